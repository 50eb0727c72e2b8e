"""A slow client pauses the backend feeding it (``gateway/flow.py``), on the memory reactor.

The TCP transport of a client's connection pauses its producer, the
``HTTPChannel``, when its write buffer passes 64 KiB, and resumes it once the
buffer has drained.  Here the channel is paused as that transport would, and
what must follow is checked: the transport of aigw's connection to the backend
is paused (it stops reading the backend's socket), then resumed.  Both legs: a
``tools/call`` whose reply became SSE, and the session's GET stream.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from aigw.gateway.flow import Valve
from aigw.protocol import jsonrpc
from aigw.upstream.connection import Connection
from aigw.web.server import BoundedChannel
from tests.unit.gateway.helpers import Collect, GatewayTestCase
from tests.unit.memory import run


class _Recorded:
    """Pause and resume calls on one transport, in order."""

    def __init__(self, transport: Any) -> None:
        self.calls: list[str] = []
        transport.pauseProducing = lambda: self.calls.append("pause")
        transport.resumeProducing = lambda: self.calls.append("resume")


class SlowClientTests(GatewayTestCase):
    def upstream_transports(self) -> list[_Recorded]:
        """aigw's connections to the backends, their pause and resume recorded."""
        return [
            _Recorded(link.clientIO)
            for link in self.network.links()
            # An endpoint's connection is wrapped (twisted.internet.endpoints).
            if isinstance(getattr(link.clientIO.protocol, "_wrappedProtocol", None), Connection)
        ]

    def streaming_channel(self) -> BoundedChannel:
        """The client connection whose response has a producer: the streamed reply."""
        channels = [
            link.serverIO.protocol
            for link in self.network.links()
            if isinstance(link.serverIO.protocol, BoundedChannel)
            and link.serverIO.protocol._requestProducer is not None
        ]
        self.assertEqual(len(channels), 1)
        return channels[0]

    @run
    async def test_a_slow_client_pauses_the_backend_of_its_streamed_reply(self) -> None:
        """A `tools/call` whose reply is SSE (progress first), the client's socket full.

        expected: aigw stops reading the backend's reply (its transport paused) until
        the client's socket drains (resumed); the call then completes
        """
        await self.start_gateway()
        session = await self.initialize()
        self.alpha.hold = Deferred()
        response = await self.stream_call(session, 9, {"name": "alpha__progress"})
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream"])
        upstream = self.upstream_transports()
        channel = self.streaming_channel()
        channel.pauseProducing()  # as the TCP transport does past its high-water mark
        await self.network.settle()
        self.assertEqual([r.calls for r in upstream if r.calls], [["pause"]])
        channel.resumeProducing()  # drained below the low-water mark
        await self.network.settle()
        self.assertEqual([r.calls for r in upstream if r.calls], [["pause", "resume"]])
        chunks: list[bytes] = []
        body = Collect(chunks)
        response.deliverBody(body)
        self.alpha.hold.callback(None)
        await self.until(lambda: b'"finished"' in b"".join(chunks))
        self.assertIsNone(channel._requestProducer)  # released with the answer

    @run
    async def test_a_client_that_reads_nothing_for_the_backend_timeout_frees_the_call(
        self,
    ) -> None:
        """A `tools/call` whose SSE reply the client stops reading for longer than the
        backend's `timeout` (5 s): its upstream connection and slot are not held forever.

        expected: the call ends with JSON-RPC -32011 (UPSTREAM_TIMEOUT), "the client read
        nothing within the timeout"; the upstream connection closed
        """
        await self.start_gateway()
        session = await self.initialize()
        self.alpha.hold = Deferred()
        response = await self.stream_call(session, 9, {"name": "alpha__progress"})
        self.assertTrue(self.upstream_transports())
        self.streaming_channel().pauseProducing()
        await self.network.sleep(6)
        chunks: list[bytes] = []
        response.deliverBody(Collect(chunks))
        await self.until(lambda: b"-32011" in b"".join(chunks))
        answer = json.loads(b"".join(chunks).split(b"data: ")[-1])
        self.assertEqual(answer["id"], 9)
        self.assertEqual(answer["error"]["code"], jsonrpc.UPSTREAM_TIMEOUT)
        self.assertIn("the client read nothing", answer["error"]["data"]["detail"])
        # The call's connection is closed; the idle ones too, past keep_alive_timeout (4 s).
        self.assertEqual(self.upstream_transports(), [])

    @run
    async def test_a_slow_client_pauses_the_backend_get_stream(self) -> None:
        """The session's GET stream, the client's socket full.

        expected: aigw stops reading the backend's GET stream until the client
        drains its socket
        """
        await self.start_gateway()
        self.alpha.get_status = self.beta.get_status = 200
        session = await self.initialize()
        await self.open_stream(session)
        await self.until(lambda: self.alpha.stream_requests and self.beta.stream_requests)
        upstream = self.upstream_transports()
        channel = self.streaming_channel()
        channel.pauseProducing()
        await self.network.settle()
        paused = [r.calls for r in upstream if r.calls]
        self.assertEqual(paused, [["pause"], ["pause"]])  # both backends' streams
        channel.resumeProducing()
        await self.network.settle()
        self.assertEqual([r.calls for r in upstream if r.calls], [["pause", "resume"]] * 2)


class _Source:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


class ValveTests(SynchronousTestCase):
    def test_a_source_joining_a_paused_valve_is_paused_at_once(self) -> None:
        valve = Valve()
        early = _Source()
        valve.add(early)
        valve.pauseProducing()
        late = _Source()
        valve.add(late)
        valve.pauseProducing()  # a second pause is no second call
        valve.resumeProducing()
        self.assertEqual(early.calls, ["pause", "resume"])
        self.assertEqual(late.calls, ["pause", "resume"])

    def test_a_source_leaving_a_paused_valve_is_resumed(self) -> None:
        valve = Valve()
        source = _Source()
        valve.add(source)
        valve.pauseProducing()
        valve.remove(source)
        valve.resumeProducing()
        self.assertEqual(source.calls, ["pause", "resume"])
