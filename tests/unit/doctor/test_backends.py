"""The backend checks against fake transports."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig, ToolSelector
from aigw.doctor.backends import check_backend, judge_names
from aigw.doctor.findings import Finding
from aigw.upstream.api import Reply
from tests.fakes import FakeTransport, Scripted

CONFIG = BackendConfig(name="files", url="http://files.internal/mcp")


def healthy(tools: list[str]) -> FakeTransport:
    transport = FakeTransport("files")
    transport.answer(
        "initialize",
        {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}},
        session_id="s1",
    )
    transport.answer("tools/list", {"tools": [{"name": name} for name in tools]})
    return transport


class BackendTests(SynchronousTestCase):
    def findings(self, transport: FakeTransport) -> list[Finding]:
        return self.successResultOf(check_backend(CONFIG, transport, Clock(), 30.0))

    def test_healthy(self) -> None:
        transport = healthy(["read", "write"])
        backend, tools = self.findings(transport)
        self.assertEqual(backend.verdict, "ok")
        self.assertIn("revision 2025-06-18", backend.seen)
        self.assertEqual((tools.verdict, tools.check), ("ok", "tools files"))
        self.assertIn("2 tools", tools.seen)
        # The upstream session it opened is ended.
        self.assertEqual(transport.requests[-1].kind, "delete")

    def test_a_ping_during_the_tools_list_is_answered(self) -> None:
        """The doctor's own ``tools/list``: a ping on its reply is answered as aigw
        answers one (``OwnCollector``), on the session opened and in its revision."""
        transport = healthy([])
        ping = {"jsonrpc": "2.0", "id": "srv-1", "method": "ping"}
        listed = {"jsonrpc": "2.0", "result": {"tools": [{"name": "read"}]}}
        transport.scripts["tools/list"] = [Scripted((ping, listed))]
        tools = self.findings(transport)[1]
        self.assertIn("1 tool", tools.seen)
        (pong,) = [r for r in transport.requests if r.message and "method" not in r.message]
        self.assertEqual(pong.message, {"jsonrpc": "2.0", "id": "srv-1", "result": {}})
        self.assertEqual((pong.session_id, pong.protocol_version), ("s1", "2025-06-18"))

    def test_down(self) -> None:
        transport = FakeTransport("files")
        transport.fail("server/discover", "unavailable", "connection refused")
        (found,) = self.findings(transport)
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("connection refused", found.seen)
        self.assertIn("http://files.internal/mcp", found.seen)

    def test_mapped_names_warn(self) -> None:
        tools = self.findings(healthy(["ok", "has.dot", "x" * 70]))[1]
        self.assertEqual(tools.verdict, "warn")
        self.assertIn("3 tools; 2 names do not fit", tools.seen)
        self.assertIn("'has.dot' -> files__has_dot_", tools.seen)

    def test_no_tools_capability(self) -> None:
        transport = FakeTransport("files")
        transport.answer("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}})
        self.assertEqual(self.findings(transport)[1].seen, "the server offers no tools")

    def test_tools_list_fails(self) -> None:
        transport = healthy([])
        transport.scripts.pop("tools/list")
        self.assertEqual(self.findings(transport)[1].verdict, "warn")

    def test_timeout(self) -> None:
        clock = Clock()
        d = check_backend(CONFIG, NeverAnswers("files"), clock, 5.0)
        clock.advance(5)
        (found,) = self.successResultOf(d)
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("no answer within 5 s", found.seen)

    def test_judge_names(self) -> None:
        self.assertEqual(judge_names(CONFIG, []).verdict, "ok")

    def test_selected_tools_only(self) -> None:
        selector = ToolSelector(exclude=("has.dot",))
        config = attrs.evolve(CONFIG, tools=selector)
        found = judge_names(config, ["ok", "has.dot"])
        self.assertEqual(found.verdict, "ok")
        self.assertEqual(found.seen, "2 tools, 1 selected by tools, every name fits files__<tool>")

    def test_include_of_an_unlisted_tool(self) -> None:
        config = attrs.evolve(CONFIG, tools=ToolSelector(include=("ok", "okk")))
        found = judge_names(config, ["ok"])
        self.assertEqual(found.verdict, "warn")
        self.assertIn("'okk'", found.seen)


class NeverAnswers(FakeTransport):
    """A backend that accepts the connection and never answers."""

    async def post(self, *args: Any, **kwargs: Any) -> Reply:
        never: Deferred[Reply] = Deferred()
        return await never
