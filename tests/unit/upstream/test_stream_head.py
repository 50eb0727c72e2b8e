"""A stream's response head has the backend's ``timeout`` (``Upstream._send``): a GET
stream or a listen whose backend accepts the request and never answers fails as a
timeout, its connection closed and forgotten by the pool; giving up on one before its
head came aborts its connection at once.

On a memory reactor: the test plays the backend by hand, and time passes only when
it advances the clock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.upstream.api import Reply, UpstreamError
from aigw.upstream.client import Upstream

URL = "http://127.0.0.1:8080/mcp"
TIMEOUT = 10.0
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


class StreamHeadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        config = BackendConfig(name="mail", url=URL, timeout=TIMEOUT)
        self.upstream = Upstream(config, self.reactor)
        self.readers: list[Any] = []

    def get_stream(self) -> Deferred[Reply]:
        return ensureDeferred(
            self.upstream.get_stream(lambda _: None, "s-1", "2025-11-25", None, self.readers.append)
        )

    def listen(self) -> Deferred[Reply]:
        return ensureDeferred(
            self.upstream.listen(b"{}", lambda _: None, "2026-07-28", {}, self.readers.append)
        )

    def accept(self) -> tuple[Protocol, StringTransport]:
        """The backend accepts the connection (and reads the request, answering nothing)."""
        protocol = self.reactor.tcpClients[-1][2].buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def lose(self, protocol: Protocol, transport: StringTransport) -> None:
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
