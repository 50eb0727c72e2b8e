"""The gateway's events: an access decision per named backend item, one RequestFinished
per client request it handles (``aigw/events.py``)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred

from aigw.config import AccessConfig, AccessRule
from aigw.protocol import jsonrpc
from tests.fakes import RecordingObserver
from tests.unit.gateway.helpers import GatewayTestCase, modern, routing, sse_messages
from tests.unit.memory import run


class EventTests(GatewayTestCase):
    async def start_observed(self, **overrides: Any) -> RecordingObserver:
        await self.start_gateway(**overrides)
        recorder = RecordingObserver()
        self.service.observers.add(recorder)
        return recorder

    @run
    async def test_a_call_reports_its_access_decision_and_its_end(self) -> None:
        recorder = await self.start_observed()
        session = await self.initialize()
        self.alpha.hold = Deferred()  # the backend takes 0.25 s of fake time to answer
        calling = ensureDeferred(
            self.call(session, "tools/call", {"name": "alpha__progress", "arguments": {}})
        )
        await self.network.sleep(0.25)
        self.alpha.hold.callback(None)
        answers = [m for m in sse_messages(await calling) if m.get("id") == 1]
        self.assertIn("result", answers[0])
        [decided] = recorder.decisions
        self.assertEqual(
            (decided.backend, decided.name, decided.allowed, decided.rule),
            ("alpha", "progress", True, "access.default"),
        )
        finished = recorder.requests[-1]
        self.assertEqual(
            (finished.method, finished.backend, finished.name, finished.outcome),
            ("tools/call", "alpha", "progress", "ok"),
        )
        self.assertIsNone(finished.error_code)
        self.assertEqual(finished.upstream_seconds, 0.25)
        self.assertGreaterEqual(finished.seconds, finished.upstream_seconds)

    @run
    async def test_initialize_and_lists_are_reported_without_a_backend(self) -> None:
        recorder = await self.start_observed()
        session = await self.initialize()
        await self.call(session, "tools/list", {})
        self.assertEqual(
            [(e.method, e.backend, e.outcome) for e in recorder.requests],
            [("initialize", None, "ok"), ("tools/list", None, "ok")],
        )
        self.assertEqual(recorder.decisions, [])

    @run
    async def test_errors_report_their_code(self) -> None:
        recorder = await self.start_observed()
        session = await self.initialize()
        await self.call(session, "nope/nothing", {})
        await self.call(session, "tools/call", {"name": "alpha__secret", "arguments": {}})
        self.assertEqual(
            [(e.method, e.outcome, e.error_code) for e in recorder.requests[1:]],
            [
                ("nope/nothing", "error", jsonrpc.METHOD_NOT_FOUND),
                ("tools/call", "error", jsonrpc.INVALID_PARAMS),
            ],
        )

    @run
    async def test_a_denied_call_names_the_rule_that_denied_it(self) -> None:
        access = AccessConfig(rules=(AccessRule("deny", backends=("alpha",), tools=("echo",)),))
        recorder = await self.start_observed(access=access)
        session = await self.initialize()
        body = await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {}})
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS)
        [decided] = recorder.decisions
        self.assertEqual((decided.allowed, decided.rule), (False, "access.rules[0]"))
        finished = recorder.requests[-1]
        self.assertEqual(
            (finished.backend, finished.outcome, finished.error_code),
            ("alpha", "denied", jsonrpc.INVALID_PARAMS),
        )

    @run
    async def test_server_discover_is_reported_like_a_routed_request(self) -> None:
        """2026-07-28 server/discover is answered by the web layer, and reported all the same."""
        recorder = await self.start_observed()
        response, body = await self.post(
            modern("server/discover"), headers=routing("server/discover")
        )
        self.assertEqual(response.code, 200, body)
        [finished] = recorder.requests
        self.assertEqual(
            (finished.method, finished.backend, finished.outcome, finished.error_code),
            ("server/discover", None, "ok", None),
        )

    @run
    async def test_a_decision_and_its_request_share_an_id_and_the_exposed_name(self) -> None:
        recorder = await self.start_observed()
        session = await self.initialize()
        await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {"q": 1}})
        await self.call(session, "resources/read", {"uri": "aigw:beta/file:///x"}, rid=2)
        first, second = recorder.decisions
        calls = recorder.requests[1:]
        self.assertEqual(
            [(d.method, d.exposed, d.request_id) for d in recorder.decisions],
            [(r.method, r.exposed, r.request_id) for r in calls],
        )
        self.assertEqual(
            [(d.method, d.exposed, d.name) for d in (first, second)],
            [
                ("tools/call", "alpha__echo", "echo"),
                ("resources/read", "aigw:beta/file:///x", "file:///x"),
            ],
        )
        ids = [e.request_id for e in recorder.requests]
        self.assertEqual(len(set(ids)), 3)  # initialize too: every request has its own
        self.assertNotIn(0, ids)

    @run
    async def test_arguments_stay_out_of_events_unless_the_gateway_records_them(self) -> None:
        recorder = await self.start_observed()
        session = await self.initialize()
        await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {"q": 1}})
        self.assertIsNone(recorder.requests[-1].arguments)
        self.service.gateway.calls.record_arguments = True
        await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {"q": 2}})
        await self.call(session, "prompts/get", {"name": "beta__p", "arguments": {"x": "y"}})
        self.assertEqual([e.arguments for e in recorder.requests[-2:]], [{"q": 2}, {"x": "y"}])
