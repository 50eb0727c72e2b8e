"""Idle upstream connections: closed before the backend would, and a request lost on
one that the backend closed as it went out sent again when it is safe to.

On a memory reactor: the test plays the backend by hand (connections made, bytes
answered, connections dropped), so no socket is opened and time passes only when
the test advances the clock.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.upstream.api import UpstreamError
from aigw.upstream.client import Upstream
from aigw.upstream.connection import (
    KEEP_ALIVE_MARGIN,
    ConnectionPool,
    StaleConnection,
    Target,
    UpstreamResponse,
    keep_alive_hint,
)
from tests.fakes import RecordingObserver

URL = "http://127.0.0.1:8080/mcp"
JSON_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def answer_with(keep_alive: bytes) -> bytes:
    """JSON_OK saying how long the backend keeps the connection."""
    return JSON_OK.replace(b"\r\n\r\n", b"\r\nKeep-Alive: " + keep_alive + b"\r\n\r\n")


class HintTests(SynchronousTestCase):
    def test_the_timeout_parameter_in_seconds(self) -> None:
        self.assertEqual(keep_alive_hint(b"timeout=5"), 5.0)
        self.assertEqual(keep_alive_hint(b"timeout=5, max=100"), 5.0)  # Apache's
        self.assertEqual(keep_alive_hint(b"max=100, Timeout = 2"), 2.0)
        self.assertEqual(keep_alive_hint(b'timeout="3"'), 3.0)

    def test_no_usable_timeout_is_no_hint(self) -> None:
        for value in (None, b"", b"max=100", b"timeout=", b"timeout=soon", b"timeout=-1"):
            self.assertIsNone(keep_alive_hint(value), value)


class Backend:
    """The backend's side of the pool's connections, played by hand."""

    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.reactor = reactor
        self.links: list[tuple[IProtocol, StringTransport]] = []

    def accept(self) -> tuple[IProtocol, StringTransport]:
        """Let the newest connection attempt succeed."""
        protocol = self.reactor.tcpClients[len(self.links)][2].buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.links.append((protocol, transport))
        return protocol, transport

    @property
    def attempts(self) -> int:
        return len(self.reactor.tcpClients)


class PoolTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.backend = Backend(self.reactor)
        self.target = Target(URL, self.reactor, 5)
        self.observer = RecordingObserver()
        self.pool = ConnectionPool(
            self.target, 4, self.reactor, keep_alive=4.0, observer=self.observer
        )
        self.asked = 0

    def request(self, replayable: bool = False) -> Deferred[UpstreamResponse]:
        def may_replay() -> bool:
            self.asked += 1
            return replayable

        head = self.target.head(b"POST", [], 2)
        return ensureDeferred(self.pool.request(head, b"{}", None, may_replay))

    def exchange(self, reply: bytes = JSON_OK) -> tuple[IProtocol, StringTransport]:
        """One whole exchange on a new connection, left idle in the pool."""
        d = self.request()
        protocol, transport = self.backend.accept()
        protocol.dataReceived(reply)
        self.assertEqual(self.successResultOf(d).code, 200)
        return protocol, transport


class IdleLifetimeTests(PoolTestCase):
    def test_an_idle_connection_is_reused_then_closed_after_keep_alive_timeout(self) -> None:
        protocol, transport = self.exchange()
        self.reactor.advance(3.75)
        d = self.request()
        self.assertEqual(self.backend.attempts, 1)  # reused
        protocol.dataReceived(JSON_OK)
        self.successResultOf(d)
        self.reactor.advance(3.75)  # idle again since the second answer
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.25)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.request()
        self.assertEqual(self.backend.attempts, 2)  # a new connection

    def test_the_backends_keep_alive_timeout_shortens_it_by_the_margin(self) -> None:
        _, transport = self.exchange(answer_with(b"timeout=2"))
        self.reactor.advance(2 - KEEP_ALIVE_MARGIN - 0.25)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.25)
        self.assertTrue(transport.disconnecting)

    def test_a_longer_keep_alive_timeout_does_not_lengthen_it(self) -> None:
        _, transport = self.exchange(answer_with(b"timeout=60, max=1000"))
        self.reactor.advance(4)
        self.assertTrue(transport.disconnecting)

    def test_a_keep_alive_timeout_within_the_margin_keeps_nothing(self) -> None:
        _, transport = self.exchange(answer_with(b"timeout=1"))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_a_shorter_hint_brings_the_sweep_forward(self) -> None:
        first = self.request()
        second = self.request()
        (one, one_transport), (two, two_transport) = self.backend.accept(), self.backend.accept()
        one.dataReceived(JSON_OK)  # idle for 4 s
        two.dataReceived(answer_with(b"timeout=3"))  # idle for 2 s
        self.successResultOf(first)
        self.successResultOf(second)
        self.reactor.advance(2)
        self.assertEqual((one_transport.disconnecting, two_transport.disconnecting), (False, True))
        self.reactor.advance(2)
        self.assertTrue(one_transport.disconnecting)

    def test_a_connection_past_its_time_is_not_used_even_if_the_sweep_is_late(self) -> None:
        """A busy reactor runs the sweep late: the time is checked again on use."""
        _, transport = self.exchange()
        self.reactor.rightNow += 5  # time passes, no delayed call runs
        self.request()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.backend.attempts, 2)

    def test_close_stops_the_sweep(self) -> None:
        self.exchange()
        self.pool.close()
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class StaleConnectionTests(PoolTestCase):
    """RFC 9112 section 9.3.1: a request lost unanswered on a reused connection."""

    def reused_then_lost(self, replayable: bool, *received: bytes) -> Deferred[UpstreamResponse]:
        """A request on the idle connection, which the backend closes after ``received``."""
        protocol, _ = self.exchange()
        d = self.request(replayable)
        self.assertEqual(self.backend.attempts, 1)
        for data in received:
            protocol.dataReceived(data)
        protocol.connectionLost(Failure(ConnectionDone("closed while idle")))
        return d

    def test_a_replayable_request_is_sent_once_more_on_a_new_connection(self) -> None:
        d = self.reused_then_lost(True)
        self.assertEqual(self.asked, 1)
        self.assertEqual(self.backend.attempts, 2)
        protocol, transport = self.backend.accept()
        self.assertEqual(transport.value(), self.target.head(b"POST", [], 2) + b"{}")
        protocol.dataReceived(JSON_OK)
        self.assertEqual(self.successResultOf(d).code, 200)

    def test_a_request_not_safe_to_replay_fails(self) -> None:
        d = self.reused_then_lost(False)
        self.assertEqual(self.asked, 1)
        self.failureResultOf(d, StaleConnection)
        self.assertEqual(self.backend.attempts, 1)

    def test_a_connection_that_answered_part_of_a_head_is_not_stale(self) -> None:
        """Bytes of the answer came: the backend had the request, nothing is replayed."""
        d = self.reused_then_lost(True, b"HTTP/1.1 200 OK\r\n")
        failure = self.failureResultOf(d, ConnectionLost)
        self.assertNotIsInstance(failure.value, StaleConnection)
        self.assertEqual((self.asked, self.backend.attempts), (0, 1))

    def test_a_new_connection_lost_unanswered_is_not_retried(self) -> None:
        d = self.request(True)
        protocol, _ = self.backend.accept()
        protocol.connectionLost(Failure(ConnectionDone("closed")))
        failure = self.failureResultOf(d, ConnectionLost)
        self.assertNotIsInstance(failure.value, StaleConnection)
        self.assertEqual((self.asked, self.backend.attempts), (0, 1))

    def states(self) -> list[str]:
        return [event.state for event in self.observer.connections]

    def test_a_replayed_request_is_counted_replayed_not_lost(self) -> None:
        """Operators tell a request recovered on a new connection from one that failed."""
        d = self.reused_then_lost(True)
        self.backend.accept()[0].dataReceived(JSON_OK)
        self.successResultOf(d)
        self.assertEqual(self.states(), ["opened", "replayed", "opened"])
        detail = self.observer.connections[1].detail
        self.assertTrue(detail.startswith("before the response: "), detail)
        self.assertIn("closed while idle", detail)

    def test_a_stale_request_not_sent_again_is_counted_lost(self) -> None:
        self.failureResultOf(self.reused_then_lost(False), StaleConnection)
        self.assertEqual(self.states(), ["opened", "lost"])

    def test_a_connection_lost_after_part_of_a_head_is_counted_lost(self) -> None:
        self.failureResultOf(self.reused_then_lost(True, b"HTTP/1.1 200 OK\r\n"), ConnectionLost)
        self.assertEqual(self.states(), ["opened", "lost"])

    def test_only_once(self) -> None:
        """The second copy goes on a new connection; losing that one is the answer."""
        d = self.reused_then_lost(True)
        protocol, _ = self.backend.accept()
        protocol.connectionLost(Failure(ConnectionLost("reset")))
        self.failureResultOf(d, ConnectionLost)
        self.assertEqual((self.asked, self.backend.attempts), (1, 2))


def _message(method: str, request_id: int | None = 1) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": {}}
    if request_id is not None:
        message["id"] = request_id
    return json.dumps(message).encode()


class UpstreamReplayTests(SynchronousTestCase):
    """What ``Upstream`` sends again: decided by the JSON-RPC method (protocol/replay.py)
    for a POST, always for the GET stream and DELETE (RFC 9110 section 9.2.2)."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.backend = Backend(self.reactor)
        self.upstream = Upstream(BackendConfig(name="mail", url=URL), self.reactor)

    def stale(self, send: Any) -> Deferred[Any]:
        """``send()`` on the connection an earlier ping left idle, which the backend
        closes unanswered."""
        first = ensureDeferred(self.upstream.post(_message("ping"), lambda m: None))
        protocol, _ = self.backend.accept()
        protocol.dataReceived(JSON_OK)
        self.successResultOf(first)
        d = ensureDeferred(send())
        protocol.connectionLost(Failure(ConnectionDone("closed while idle")))
        return d

    def answer_on_a_new_connection(self, reply: bytes = JSON_OK) -> None:
        self.assertEqual(self.backend.attempts, 2)
        protocol, _ = self.backend.accept()
        protocol.dataReceived(reply)

    def test_a_list_is_sent_again(self) -> None:
        d = self.stale(lambda: self.upstream.post(_message("tools/list"), lambda m: None))
        self.answer_on_a_new_connection()
        self.assertEqual(self.successResultOf(d).status, 200)

    def test_a_tool_call_is_not(self) -> None:
        d = self.stale(lambda: self.upstream.post(_message("tools/call"), lambda m: None))
        error = self.failureResultOf(d, UpstreamError).value
        self.assertEqual(error.kind, "unavailable")
        self.assertIn("not sent twice", error.detail)
        self.assertEqual(self.backend.attempts, 1)

    def test_the_get_stream_and_delete_are_sent_again(self) -> None:
        stream = self.stale(
            lambda: self.upstream.get_stream(lambda m: None, "s1", None, None, lambda r: None)
        )
        self.answer_on_a_new_connection(
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertEqual(self.successResultOf(stream).status, 405)

    def test_delete_is_sent_again(self) -> None:
        deleting = self.stale(lambda: self.upstream.delete("s1", None))
        self.answer_on_a_new_connection(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual(self.successResultOf(deleting), 204)
