"""``UpstreamAnswers``: aigw's answers POSTed to a backend, its pongs bounded per session."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from aigw.gateway.answers import MAX_ANSWERS_IN_FLIGHT, UpstreamAnswers
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.upstream.api import HeaderFields
from tests.fakes import FakeCredentials, FakeTransport

PING = {"jsonrpc": "2.0", "id": "p1", "method": "ping"}
ALICE = Principal("https://as.example", "alice", "cli", frozenset(), {}, "t", None)


class Gated(FakeCredentials):
    """Credentials that come only when the test releases them: the POSTs asking
    for them stay in flight meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[Deferred[None]] = []

    async def headers(self, principal: Principal | None) -> HeaderFields:
        gate: Deferred[None] = Deferred()
        self.waiting.append(gate)
        await gate
        return await super().headers(principal)

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for gate in waiting:
            gate.callback(None)


class UpstreamAnswersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.transport = FakeTransport("files")
        self.answers = UpstreamAnswers({"files": self.transport})

    def test_a_ping_is_answered_on_the_session_named(self) -> None:
        who = ALICE
        self.assertTrue(self.answers.pinged(("files", "s1", "2025-11-25"), who, PING))
        (sent,) = self.transport.requests
        self.assertEqual(sent.message, {"jsonrpc": "2.0", "id": "p1", "result": {}})
        self.assertEqual((sent.session_id, sent.protocol_version), ("s1", "2025-11-25"))
        self.assertIs(sent.principal, who)

    def test_what_is_not_a_ping_is_left_alone(self) -> None:
        note = {"jsonrpc": "2.0", "method": "ping"}  # no id: nothing to answer
        roots = {"jsonrpc": "2.0", "id": 1, "method": "roots/list"}
        for message in (note, roots, [PING], "ping"):
            self.assertFalse(self.answers.pinged(("files", "s1", None), None, message))
        self.assertEqual(self.transport.requests, [])

    def test_a_removed_backend_gets_no_answer_and_raises_nothing(self) -> None:
        self.assertTrue(self.answers.pinged(("gone", "s1", None), None, PING))
        self.assertEqual(self.transport.requests, [])

    def test_a_flood_of_pings_is_bounded_per_session(self) -> None:
        """A backend pinging faster than it takes the answers: at most
        MAX_ANSWERS_IN_FLIGHT POSTs of one session wait, the rest are dropped (and every
        ping is still taken for a ping, never relayed); once answered, places free."""
        gated = Gated()
        transport = FakeTransport("files", credentials=gated)
        answers = UpstreamAnswers({"files": transport})
        flood = [{**PING, "id": n} for n in range(MAX_ANSWERS_IN_FLIGHT * 4)]
        with capturedLogs() as events:
            self.assertTrue(all(answers.pinged(("files", "s1", None), None, m) for m in flood))
        self.assertEqual(len(gated.waiting), MAX_ANSWERS_IN_FLIGHT)
        dropped = [e for e in events if "faster than it takes" in e["log_format"]]
        self.assertEqual(len(dropped), 1, "logged once per flood, not per ping")
        # Another session of the same backend has its own places.
        answers.pinged(("files", "s2", None), None, PING)
        self.assertEqual(len(gated.waiting), MAX_ANSWERS_IN_FLIGHT + 1)
        gated.release()
        answered = [r.message["id"] for r in transport.requests]
        self.assertEqual(answered, [*range(MAX_ANSWERS_IN_FLIGHT), "p1"])
        answers.pinged(("files", "s1", None), None, {**PING, "id": "later"})
        gated.release()
        self.assertEqual(transport.requests[-1].message["id"], "later")

    def test_a_request_is_refused_on_the_session_named(self) -> None:
        roots = {"jsonrpc": "2.0", "id": 7, "method": "roots/list"}
        where = ("files", "s1", "2025-11-25")
        self.assertTrue(self.answers.refused(where, ALICE, roots, "no one asked", "own_request"))
        (sent,) = self.transport.requests
        error = {
            "code": jsonrpc.METHOD_NOT_FOUND,
            "message": "roots/list: no one asked",
            "data": {"reason": "own_request"},
        }
        self.assertEqual(sent.message, {"jsonrpc": "2.0", "id": 7, "error": error})
        self.assertEqual((sent.session_id, sent.principal), ("s1", ALICE))

    def test_what_is_not_a_request_is_not_refused(self) -> None:
        note = {"jsonrpc": "2.0", "method": "notifications/progress"}
        answer = {"jsonrpc": "2.0", "id": 3, "result": {}}
        for message in (note, answer, [PING], "roots/list"):
            self.assertFalse(self.answers.refused(("files", "s1", None), None, message, "x", "y"))
        self.assertEqual(self.transport.requests, [])

    def test_refusals_and_pongs_share_the_bound(self) -> None:
        """A backend flooding requests other than pings is bounded as pings are."""
        gated = Gated()
        answers = UpstreamAnswers({"files": FakeTransport("files", credentials=gated)})
        where = ("files", "s1", None)
        for n in range(MAX_ANSWERS_IN_FLIGHT):
            answers.refused(where, None, {"jsonrpc": "2.0", "id": n, "method": "x"}, "w", "r")
        self.assertTrue(answers.pinged(where, None, PING))  # taken for a ping, dropped
        self.assertEqual(len(gated.waiting), MAX_ANSWERS_IN_FLIGHT)
