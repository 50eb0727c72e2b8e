"""The connection pool reports connections opened, failed and lost (UpstreamConnection).

On a memory reactor: the test plays the network, connecting, refusing and
dropping connections by hand, so no socket is opened and no time passes.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.error import ConnectingCancelledError, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.events import UpstreamConnection
from aigw.upstream.api import UpstreamError
from aigw.upstream.client import Upstream
from aigw.upstream.connection import ConnectionPool, Target, UpstreamResponse
from tests.fakes import RecordingObserver

URL = "http://127.0.0.1:8080/mcp"
JSON_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
CLOSE_DELIMITED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}"


class PoolEventsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.observer = RecordingObserver()
        self.target = Target(URL, self.reactor, 5)
        self.pool = ConnectionPool(
            self.target, 4, self.reactor, keep_alive=4.0, observer=self.observer, backend="files"
        )

    def request(self) -> Deferred[UpstreamResponse]:
        head = self.target.head(b"POST", [], 2)
        return ensureDeferred(self.pool.request(head, b"{}"))

    def connect(self) -> tuple[IProtocol, StringTransport]:
        """Let the pending connection attempt succeed."""
        factory = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def states(self) -> list[str]:
        return [event.state for event in self.observer.connections]

    def test_a_refused_connection_is_reported_failed(self) -> None:
        d = self.request()
        factory = self.reactor.tcpClients[0][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError("nobody home")))
        self.failureResultOf(d, ConnectionRefusedError)
        (event,) = self.observer.connections
        self.assertEqual((event.backend, event.state), ("files", "failed"))
        self.assertIn("nobody home", event.detail)

    def test_a_connection_made_is_reported_opened_once(self) -> None:
        d = self.request()
        protocol, _ = self.connect()
        self.assertEqual(self.observer.connections, [UpstreamConnection("files", "opened")])
        protocol.dataReceived(JSON_OK)
        self.successResultOf(d)
        # The next request reuses the idle connection: nothing new to report.
        again = self.request()
        self.assertEqual(len(self.reactor.tcpClients), 1)
        again.cancel()
        self.failureResultOf(again, CancelledError)
        self.assertEqual(self.states(), ["opened"])

    def test_lost_before_the_response(self) -> None:
        d = self.request()
        protocol, _ = self.connect()
        protocol.connectionLost(Failure(ConnectionLost("reset by peer")))
        self.failureResultOf(d, ConnectionLost)
        self.assertEqual(self.states(), ["opened", "lost"])
        detail = self.observer.connections[1].detail
        self.assertTrue(detail.startswith("before the response: "), detail)
        self.assertIn("reset by peer", detail)

    def test_lost_in_the_body(self) -> None:
        d = self.request()
        protocol, _ = self.connect()
        protocol.dataReceived(JSON_OK[:-1])
        self.successResultOf(d)
        protocol.connectionLost(Failure(ConnectionLost("reset by peer")))
        self.assertEqual(self.states(), ["opened", "lost"])
        self.assertTrue(self.observer.connections[1].detail.startswith("in the body"))

    def test_normal_ends_are_not_reported(self) -> None:
        """An idle connection closed, a body that ends with its connection: keep-alive life."""
        d = self.request()
        protocol, _ = self.connect()
        protocol.dataReceived(JSON_OK)
        self.successResultOf(d)
        protocol.connectionLost(Failure(ConnectionLost("idle timeout")))
        d = self.request()
        protocol, _ = self.connect()
        protocol.dataReceived(CLOSE_DELIMITED)
        self.successResultOf(d)
        protocol.connectionLost(Failure(ConnectionLost("done")))
        self.assertEqual(self.states(), ["opened", "opened"])

    def test_connections_we_drop_are_not_reported_lost(self) -> None:
        d = self.request()
        protocol, transport = self.connect()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(transport.disconnecting or transport.disconnected)
        protocol.connectionLost(Failure(ConnectionLost("aborted")))
        self.assertEqual(self.states(), ["opened"])

    def test_cancelled_attempts_are_not_failures(self) -> None:
        d = self.request()
        self.pool.close()
        self.failureResultOf(d, ConnectingCancelledError)
        self.assertEqual(self.observer.connections, [])

    def test_no_observer_no_reports(self) -> None:
        pool = ConnectionPool(self.target, 4, self.reactor, keep_alive=4.0)
        d = ensureDeferred(pool.request(self.target.head(b"GET", [], None), None))
        self.reactor.tcpClients[0][2].clientConnectionFailed(
            None, Failure(ConnectionRefusedError())
        )
        self.failureResultOf(d, ConnectionRefusedError)


class UpstreamEventsTests(SynchronousTestCase):
    def test_upstream_reports_its_connections_by_backend_name(self) -> None:
        reactor = MemoryReactorClock()
        observer = RecordingObserver()
        upstream = Upstream(BackendConfig(name="mail", url=URL), reactor, observer=observer)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
        received: list[Any] = []
        d = ensureDeferred(upstream.post(body, received.append))
        reactor.tcpClients[0][2].clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(self.failureResultOf(d, UpstreamError).value.kind, "unavailable")
        self.assertEqual(
            [(event.backend, event.state) for event in observer.connections], [("mail", "failed")]
        )
