"""What a finished request leaves for the cyclic garbage collector: nothing of aigw's.

``make soak`` found aigw's RSS growing by a quarter in a minute of steady load
without any object staying alive: every relayed exchange was a reference cycle
(the body reader held the collector's ``sink``, the collector held the reader; the
upstream response and its reader held each other; a held stream and its ``end``
callback too), so each exchange, with its messages, waited for a full collection
to be freed, and the heap grew between collections.  Here the gc runs in
``DEBUG_SAVEALL`` mode over a session's life (lists, calls, a call answered in
SSE, the GET stream closed by the client, DELETE) and over 2026-07-28 requests:
no object of an exchange's or a stream's own types may be found only through a
cycle.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from tests.unit.gateway.helpers import Collect, GatewayTestCase, modern, post_listen, routing
from tests.unit.memory import run

#: The objects of one exchange with a backend (aigw.gateway.exchange, aigw.upstream).
EXCHANGE_TYPES = frozenset({"Collector", "_BodyReader", "_BoundedRead", "UpstreamResponse"})
#: And of a held stream (aigw.gateway.streams and .listen).
STREAM_TYPES = frozenset({"SessionStream", "ListenStream", "UpstreamFeed"})


@contextmanager
def cyclic_garbage(types: frozenset[str]) -> Iterator[Counter[str]]:
    """The aigw objects of ``types`` found unreachable only through cycles while the
    block ran, by type name (filled when the block ends)."""
    found: Counter[str] = Counter()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.update(
            type(o).__name__
            for o in gc.garbage
            if type(o).__module__.startswith("aigw.") and type(o).__name__ in types
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


class CycleTests(GatewayTestCase):
    @run
    async def test_a_session_s_requests_and_stream_leave_no_cycles(self) -> None:
        await self.start_gateway()
        warm = await self.initialize()  # what a first request fills (pools, caches)
        await self.call(warm, "tools/list")
        await self.network.settle()
        with cyclic_garbage(EXCHANGE_TYPES | STREAM_TYPES) as found:
            session = await self.initialize()
            await self.call(session, "tools/list")
            await self.call(session, "prompts/list")
            await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {}})
            progress = {"name": "alpha__progress", "_meta": {"progressToken": "p"}}
            await self.call(session, "tools/call", progress, rid=2)
            stream = await self.open_stream(session)
            chunks: list[bytes] = []
            reader = Collect(chunks)
            stream.deliverBody(reader)
            await self.network.settle()
            reader.transport.stopProducing()  # the client closes its GET stream
            await self.network.settle()
            response = await self.http.delete(
                self.url,
                headers={"Mcp-Session-Id": [session], "MCP-Protocol-Version": ["2025-11-25"]},
            )
            self.assertEqual(response.code, 204)
            del stream, reader, response
            await self.network.settle()
        self.assertTrue(chunks)  # the stream was open
        self.assertEqual(found, Counter())

    @run
    async def test_modern_requests_beside_a_listen_leave_no_cycles(self) -> None:
        """The listen ends by the client hanging up: the request is cancelled, and the
        CancelledError's traceback holds the frames (and the stream) until a
        collection; that one is Twisted's cancellation, not checked here."""
        await self.start_gateway()
        await self.network.settle()
        with cyclic_garbage(EXCHANGE_TYPES) as found:
            listen = await post_listen(self.http, self.url, {"toolsListChanged": True}, 1)
            self.assertEqual(listen.code, 200)
            chunks: list[bytes] = []
            reader = Collect(chunks)
            listen.deliverBody(reader)
            await self.network.settle()
            for message in (
                modern("tools/list"),
                modern("tools/call", {"name": "alpha__echo", "arguments": {}}, 2),
            ):
                name = message["params"].get("name")
                response, body = await self.post(message, headers=routing(message["method"], name))
                self.assertEqual(response.code, 200, body)
                self.assertIn("result", body)
            reader.transport.stopProducing()  # the client hangs up its listen
            del listen, reader, response
            await self.network.settle()
        self.assertTrue(chunks)
        self.assertEqual(found, Counter())
