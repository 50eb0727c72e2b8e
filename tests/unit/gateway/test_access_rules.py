"""The richer access rules through the real gateway: methods, prompts, resources."""

from __future__ import annotations

from typing import Any

from aigw.config import AccessConfig, AccessRule
from aigw.protocol import jsonrpc
from tests.fakes import RecordingObserver
from tests.unit.gateway.helpers import GatewayTestCase
from tests.unit.memory import run


class MethodRuleTests(GatewayTestCase):
    async def start_with(self, *rules: AccessRule, **overrides: Any) -> RecordingObserver:
        await self.start_gateway(access=AccessConfig(rules=rules), **overrides)
        recorder = RecordingObserver()
        self.service.observers.add(recorder)
        return recorder

    @run
    async def test_listed_but_not_callable(self) -> None:
        recorder = await self.start_with(
            AccessRule("deny", backends=("alpha",), methods=("tools/call",))
        )
        session = await self.initialize()
        self.assertIn("alpha__echo", await self.tool_names(session))
        body = await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {}})
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS)
        [decided] = recorder.decisions
        self.assertEqual(
            (decided.method, decided.allowed, decided.rule),
            ("tools/call", False, "access.rules[0]"),
        )

    @run
    async def test_callable_but_not_listed(self) -> None:
        await self.start_with(AccessRule("deny", tools=("echo",), methods=("tools/list",)))
        session = await self.initialize()
        self.assertNotIn("alpha__echo", await self.tool_names(session))
        self.assertIn("alpha__progress", await self.tool_names(session))
        body = await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {}})
        self.assertIn("result", body)

    @run
    async def test_rules_without_methods_hide_and_refuse_alike(self) -> None:
        await self.start_with(AccessRule("deny", tools=("echo",)))
        session = await self.initialize()
        self.assertNotIn("alpha__echo", await self.tool_names(session))
        body = await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {}})
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS)

    @run
    async def test_prompt_and_resource_globs(self) -> None:
        recorder = await self.start_with(
            AccessRule("deny", prompts=("secret*",)),
            AccessRule("deny", resources=("file:///private/*",)),
        )
        session = await self.initialize()
        body = await self.call(session, "prompts/get", {"name": "alpha__secret-plan"})
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS)
        body = await self.call(session, "prompts/get", {"name": "alpha__summary"})
        self.assertIn("result", body)
        private = {"uri": "aigw:alpha/file:///private/key"}
        body = await self.call(session, "resources/read", private)
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS)
        body = await self.call(session, "resources/read", {"uri": "aigw:alpha/file:///pub/x"})
        self.assertIn("result", body)
        self.assertEqual(
            [(d.method, d.name, d.rule) for d in recorder.decisions],
            [
                ("prompts/get", "secret-plan", "access.rules[0]"),
                ("prompts/get", "summary", "access.default"),
                ("resources/read", "file:///private/key", "access.rules[1]"),
                ("resources/read", "file:///pub/x", "access.default"),
            ],
        )
