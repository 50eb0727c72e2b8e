"""The gateway's events: an access decision per named backend item, one RequestFinished
per client request it handles (``aigw/events.py``)."""

from __future__ import annotations

from typing import Any

from aigw.config import AccessConfig, AccessRule
from aigw.events import (
    AccessDecided,
    AuthenticationRefused,
    RequestFinished,
    UpstreamConnection,
)
from aigw.protocol import jsonrpc
from tests.unit.gateway.test_gateway import GatewayTestCase, run


class Recorder:
    """A GatewayObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.finished: list[RequestFinished] = []
        self.decided: list[AccessDecided] = []

    def request_finished(self, event: RequestFinished) -> None:
        self.finished.append(event)

    def access_decided(self, event: AccessDecided) -> None:
        self.decided.append(event)

    def authentication_refused(self, event: AuthenticationRefused) -> None:
        pass

    def upstream_connection(self, event: UpstreamConnection) -> None:
        pass


class EventTests(GatewayTestCase):
    async def start_observed(self, **overrides: Any) -> Recorder:
        await self.start_gateway(**overrides)
        recorder = Recorder()
        self.service.observers.add(recorder)
        return recorder

    @run
    async def test_a_call_reports_its_access_decision_and_its_end(self) -> None:
        recorder = await self.start_observed()
        session = await self.initialize()
        body = await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {}})
        self.assertIn("result", body)
        [decided] = recorder.decided
        self.assertEqual(
            (decided.backend, decided.name, decided.allowed, decided.rule),
            ("alpha", "echo", True, "access.default"),
        )
        finished = recorder.finished[-1]
        self.assertEqual(
            (finished.method, finished.backend, finished.name, finished.outcome),
            ("tools/call", "alpha", "echo", "ok"),
        )
        self.assertIsNone(finished.error_code)
        self.assertGreaterEqual(finished.seconds, finished.upstream_seconds)
        self.assertGreater(finished.upstream_seconds, 0.0)

    @run
    async def test_initialize_and_lists_are_reported_without_a_backend(self) -> None:
        recorder = await self.start_observed()
        session = await self.initialize()
        await self.call(session, "tools/list", {})
        self.assertEqual(
            [(e.method, e.backend, e.outcome) for e in recorder.finished],
            [("initialize", None, "ok"), ("tools/list", None, "ok")],
        )
        self.assertEqual(recorder.decided, [])

    @run
    async def test_errors_report_their_code(self) -> None:
        recorder = await self.start_observed()
        session = await self.initialize()
        await self.call(session, "nope/nothing", {})
        await self.call(session, "tools/call", {"name": "alpha__secret", "arguments": {}})
        self.assertEqual(
            [(e.method, e.outcome, e.error_code) for e in recorder.finished[1:]],
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
        [decided] = recorder.decided
        self.assertEqual((decided.allowed, decided.rule), (False, "access.rules[0]"))
        finished = recorder.finished[-1]
        self.assertEqual(
            (finished.backend, finished.outcome, finished.error_code),
            ("alpha", "denied", jsonrpc.INVALID_PARAMS),
        )
