"""A reply body's deadline (``client._BodyReader``): an SSE reply is cut off after the
backend's ``timeout`` without a message, a JSON one when it is not whole within it, a
reply its client reads nothing of names the client, and a stream the backend leaves
open after the answer is dropped after a grace; a body that ended leaves nothing
armed for the connection's next exchange.  A stream's response head has the backend's
``timeout`` too (``Upstream._send``), only its body none: a GET stream or a listen whose
backend takes the request and never answers fails as a timeout, its connection closed
and forgotten by the pool; giving up on one before its head came aborts it at once.

On a memory reactor: the test plays the backend by hand, and time passes only when
it advances the clock.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.upstream.api import BodyReader, Reply, UpstreamError
from aigw.upstream.client import FINISH_GRACE_SECONDS, Upstream

URL = "http://127.0.0.1:8080/mcp"
TIMEOUT = 10.0
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}).encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(message: dict[str, Any]) -> bytes:
    """One SSE event carrying ``message``, as one HTTP chunk."""
    return chunk(b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n")


PROGRESS = event({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})
ANSWER = event({"jsonrpc": "2.0", "id": 1, "result": {}})
END = b"0\r\n\r\n"


class BodyDeadlineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        config = BackendConfig(name="mail", url=URL, timeout=TIMEOUT)
        self.upstream = Upstream(config, self.reactor)
        self.received: list[Any] = []
        self.readers: list[BodyReader] = []
        self.finish_on_answer = False

    def sink(self, message: Any) -> None:
        self.received.append(message)
        if self.finish_on_answer and "id" in message:
            self.readers[-1].finish()  # as the gateway's collector does (exchange.py)

    def post(self) -> Deferred[Reply]:
        return ensureDeferred(self.upstream.post(CALL, self.sink, on_reader=self.readers.append))

    def accept(self, n: int = 0) -> tuple[IProtocol, StringTransport]:
        protocol = self.reactor.tcpClients[n][2].buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def timed_out(self, d: Deferred[Reply]) -> str:
        error = self.failureResultOf(d, UpstreamError).value
        self.assertEqual(error.kind, "timeout")
        return error.detail

    def test_an_sse_reply_is_cut_off_a_timeout_after_its_last_message(self) -> None:
        d = self.post()
        protocol, transport = self.accept()
        protocol.dataReceived(SSE_HEAD + PROGRESS)
        for _ in range(3):  # each message is progress: the call goes on past the timeout
            self.reactor.advance(TIMEOUT - 1)
            protocol.dataReceived(PROGRESS)
        self.reactor.advance(TIMEOUT - 0.5)
        self.assertNoResult(d)
        self.reactor.advance(1)
        self.assertEqual(self.timed_out(d), "no data within the timeout")
        self.assertEqual(len(self.received), 4)
        self.assertTrue(transport.disconnecting)

    def test_a_json_reply_must_be_whole_within_the_timeout(self) -> None:
        d = self.post()
        protocol, transport = self.accept()
        protocol.dataReceived(JSON_HEAD + b"{")
        for _ in range(int(TIMEOUT) - 1):
            self.reactor.advance(1)
            protocol.dataReceived(b" ")  # trickled: no byte is progress
        self.assertNoResult(d)
        self.reactor.advance(1.5)
        self.assertEqual(self.timed_out(d), "no data within the timeout")
        self.assertTrue(transport.disconnecting)

    def test_a_reply_its_client_reads_nothing_of_names_the_client(self) -> None:
        d = self.post()
        protocol, _ = self.accept()
        protocol.dataReceived(SSE_HEAD + PROGRESS)
        self.readers[-1].pause()
        self.reactor.advance(TIMEOUT + 0.5)
        self.assertEqual(self.timed_out(d), "the client read nothing within the timeout")

    def test_a_stream_left_open_after_the_answer_is_dropped_after_the_grace(self) -> None:
        self.finish_on_answer = True
        d = self.post()
        protocol, transport = self.accept()
        protocol.dataReceived(SSE_HEAD + ANSWER)
        self.assertEqual(self.successResultOf(d).status, 200)
        self.reactor.advance(FINISH_GRACE_SECONDS - 0.5)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_a_body_that_ended_leaves_nothing_armed_for_the_next_exchange(self) -> None:
        """The connection goes back to the pool; its next request is served on it, and
        neither the first reader's deadline nor its grace touches the second exchange."""
        self.finish_on_answer = True
        first = self.post()
        protocol, transport = self.accept()
        protocol.dataReceived(SSE_HEAD + ANSWER + END)
        self.successResultOf(first)
        self.reactor.advance(1)
        second = self.post()
        self.assertEqual(len(self.reactor.tcpClients), 1)  # the same connection
        protocol.dataReceived(SSE_HEAD + PROGRESS)
        self.reactor.advance(FINISH_GRACE_SECONDS + 0.5)  # past the first's grace
        protocol.dataReceived(ANSWER + END)
        self.successResultOf(second)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.received), 3)

    # The head of a stream (GET stream, listen).

    def get_stream(self) -> Deferred[Reply]:
        return ensureDeferred(
            self.upstream.get_stream(lambda _: None, "s-1", "2025-11-25", None, self.readers.append)
        )

    def listen(self) -> Deferred[Reply]:
        return ensureDeferred(
            self.upstream.listen(b"{}", lambda _: None, "2026-07-28", {}, self.readers.append)
        )

    def lose(self, protocol: IProtocol, transport: StringTransport) -> None:
        """The abort reaches the connection (a real transport reports it a turn later)."""
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)  # type: ignore[arg-type]
        self.assertEqual(self.upstream.connections._open, set())

    def test_a_get_streams_head_that_never_comes_times_out(self) -> None:
        d = self.get_stream()
        protocol, transport = self.accept()
        self.assertIn(b"GET /mcp", transport.value())
        self.reactor.advance(TIMEOUT - 0.5)
        self.assertNoResult(d)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(1)
        error = self.failureResultOf(d, UpstreamError).value
        self.assertEqual((error.kind, error.detail), ("timeout", "no response within the timeout"))
        self.lose(protocol, transport)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_a_listens_head_that_never_comes_times_out(self) -> None:
        d = self.listen()
        protocol, transport = self.accept()
        self.reactor.advance(TIMEOUT + 0.5)
        self.assertEqual(self.failureResultOf(d, UpstreamError).value.kind, "timeout")
        self.lose(protocol, transport)

    def test_a_streams_body_has_no_timeout_once_its_head_came(self) -> None:
        d = self.get_stream()
        protocol, transport = self.accept()
        self.reactor.advance(TIMEOUT - 0.5)
        protocol.dataReceived(SSE_HEAD)
        self.reactor.advance(TIMEOUT * 100)  # a quiet stream is a healthy one
        self.assertNoResult(d)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.readers), 1)
        self.readers[0].stop()
        self.assertTrue(transport.disconnecting)

    def test_cancelling_before_the_head_aborts_the_connection_at_once(self) -> None:
        d = self.get_stream()
        protocol, transport = self.accept()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.lose(protocol, transport)
        self.assertEqual(self.reactor.getDelayedCalls(), [])  # no head deadline left

    def test_cancelling_while_a_refused_streams_body_is_drained_aborts_it(self) -> None:
        d = self.get_stream()
        protocol, transport = self.accept()
        protocol.dataReceived(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 10\r\n\r\n")
        self.assertNoResult(d)  # the body (discarded) is still to come
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.lose(protocol, transport)
