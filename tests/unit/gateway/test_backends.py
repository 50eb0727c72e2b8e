"""``BackendSessions`` opening a backend that pings on the reply of aigw's own
``initialize`` or ``server/discover``, before any session exists: the ping is
answered at once, on the session the reply's head names (``exchange.OwnCollector``)."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.gateway.answers import UpstreamAnswers
from aigw.gateway.backends import BackendSessions
from aigw.protocol.revision import MODERN
from tests.fakes import JSON_REPLY, FakeTransport, Scripted, SentRequest

PING = {"jsonrpc": "2.0", "id": "srv-1", "method": "ping"}
PONG = {"jsonrpc": "2.0", "id": "srv-1", "result": {}}
INITIALIZED = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}}
#: What a legacy server answers ``server/discover`` with (basic/versioning).
NOT_MODERN = {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}}
SSE = attrs.evolve(JSON_REPLY, content_type="text/event-stream")


class PingWhileOpeningTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.transport = FakeTransport("files")
        transports = {"files": self.transport}
        self.sessions = BackendSessions(
            transports, Clock(), itertools.count(1), UpstreamAnswers(transports)
        )

    def open(self) -> Any:
        opened = self.successResultOf(self.sessions.open(["files"], "2025-11-25", {}))
        self.assertEqual(len(opened), 1, "the backend was left out")
        return opened[0][0]

    def pongs(self) -> list[SentRequest]:
        return [r for r in self.transport.requests if r.message == PONG]

    def test_a_ping_during_initialize_is_answered_on_the_session_its_head_assigned(
        self,
    ) -> None:
        """Its ``Mcp-Session-Id`` came before the body; no ``MCP-Protocol-Version``,
        since none is negotiated until the result (``OwnCollector``)."""
        self.transport.script("server/discover", Scripted((NOT_MODERN,)))
        reply = attrs.evolve(SSE, session_id="up-1")
        self.transport.script(
            "initialize", Scripted((PING, {"jsonrpc": "2.0", "result": INITIALIZED}), reply)
        )
        session = self.open()
        self.assertEqual(session.session_id, "up-1")
        (pong,) = self.pongs()
        self.assertEqual((pong.session_id, pong.protocol_version), ("up-1", None))
        # Answered while the reply was read: before notifications/initialized went.
        methods = [r.message.get("method") for r in self.transport.requests]
        self.assertEqual(
            methods, ["server/discover", "initialize", None, "notifications/initialized"]
        )

    def test_a_backend_that_assigns_no_session_gets_its_pong_without_one(self) -> None:
        """2025-11-25 basic/transports "Session Management": a server MAY assign no
        session; then no request names one, the pong neither."""
        self.transport.script("server/discover", Scripted((NOT_MODERN,)))
        self.transport.script(
            "initialize", Scripted((PING, {"jsonrpc": "2.0", "result": INITIALIZED}), SSE)
        )
        self.assertIsNone(self.open().session_id)
        (pong,) = self.pongs()
        self.assertEqual((pong.session_id, pong.protocol_version), (None, None))

    def test_a_ping_during_server_discover_is_answered_in_2026_07_28(self) -> None:
        """A 2026-07-28 backend has no sessions: the pong carries its revision's
        header and no session, as a ping of its during a call is answered."""
        discovered = {"supportedVersions": [MODERN], "capabilities": {"tools": {}}}
        self.transport.script(
            "server/discover", Scripted((PING, {"jsonrpc": "2.0", "result": discovered}), SSE)
        )
        self.transport.fail("initialize", "refused", "2026-07-28 only")
        session = self.open()
        self.assertEqual(session.protocol_version, MODERN)
        (pong,) = self.pongs()
        self.assertEqual((pong.session_id, pong.protocol_version), (None, MODERN))

    def test_the_initialize_reply_ends_at_its_answer(self) -> None:
        """Read through its collector (whose reader names the session), the reply is
        finished once the answer is in, as every other request's: what a backend sends
        after it on that stream is not waited for."""
        self.transport.script("server/discover", Scripted((NOT_MODERN,)))
        answer = {"jsonrpc": "2.0", "result": INITIALIZED}
        reply = attrs.evolve(SSE, session_id="up-1")
        self.transport.script("initialize", Scripted((PING, answer), reply))
        self.open()
        initialize_reader = self.transport.readers[1]
        self.assertTrue(initialize_reader.finished)
