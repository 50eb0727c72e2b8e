"""A stdio backend behind the real gateway, in memory: a scripted MCP server as the child.

What the transport contract mapping (``upstream/stdio.py``) promises the gateway: the
prober speaks sessions to it, its tools are listed and called as ``<backend>__<tool>``,
a call in flight when it dies fails naming the backend, and the next one reaches the
restarted child through the gateway's session repair.
"""

from __future__ import annotations

import json
from typing import Any

from aigw.config import BackendConfig
from tests.unit.gateway.helpers import GatewayTestCase
from tests.unit.memory import run
from tests.unit.upstream.processes import FakeProcess

TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object"}},
    {"name": "hang", "inputSchema": {"type": "object"}},
]


class ScriptedServer(FakeProcess):
    """Answers what an MCP server answers over stdio, on the next turn of the reactor."""

    clock: Any = None
    _read = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        *lines, _ = self.written[self._read :].split(b"\n")
        for line in lines:
            self._read += len(line) + 1
            message = json.loads(line)
            answer = self.result(message)
            if answer is not None and "id" in message:
                reply = {"jsonrpc": "2.0", "id": message["id"], "result": answer}
                self.clock.callLater(0, self.say, reply)

    def closeStdin(self) -> None:
        """Like the SDKs' stdio servers, exit at the end of input."""
        super().closeStdin()
        self.clock.callLater(0, self.exit, 0)

    def result(self, message: dict[str, Any]) -> Any:
        method = message.get("method")
        params = message.get("params") or {}
        if method == "initialize":
            return {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "s", "version": "1"},
            }
        if method == "tools/list":
            return {"tools": TOOLS}
        if method == "tools/call" and params.get("name") == "echo":
            text = f"{self.pid}: {params['arguments']['text']}"
            return {"content": [{"type": "text", "text": text}]}
        return None  # tools/call hang: never answered


class StdioBackendTests(GatewayTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.spawned: list[ScriptedServer] = []
        self.reactor.spawnProcess = self.spawn  # type: ignore[method-assign]

    def spawn(
        self,
        protocol: Any,
        executable: str,
        args: Any,
        env: Any = None,
        path: Any = None,
        **kw: Any,
    ) -> ScriptedServer:
        child = ScriptedServer(protocol, 100 + len(self.spawned), executable, args, env, path)
        child.clock = self.reactor
        self.spawned.append(child)
        protocol.makeConnection(child)
        return child

    async def start(self) -> str:
        await self.start_gateway_with(
            BackendConfig(name="local", command="mcp-server", timeout=5.0)
        )
        return await self.initialize()

    async def echo(self, session: str, text: str, rid: int = 1) -> Any:
        params = {"name": "local__echo", "arguments": {"text": text}}
        return await self.call(session, "tools/call", params, rid)

    @run
    async def test_listed_and_called_through_the_gateway(self) -> None:
        session = await self.start()
        listed = await self.call(session, "tools/list")
        self.assertEqual(
            [t["name"] for t in listed["result"]["tools"]], ["local__echo", "local__hang"]
        )
        answer = await self.echo(session, "hi")
        self.assertEqual(answer["result"]["content"][0]["text"], "100: hi")
        methods = [m.get("method") for m in self.spawned[0].received()]
        self.assertEqual(methods[:2], ["initialize", "notifications/initialized"])
        self.assertEqual(len(self.spawned), 1)

    @run
    async def test_the_client_trace_reaches_the_child_in_meta(self) -> None:
        """SEP-414: a stdio server has no headers; the trace context travels in _meta."""
        session = await self.start()
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        params = {"name": "local__echo", "arguments": {"text": "t"}}
        await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params},
            session,
            {"MCP-Protocol-Version": "2025-11-25", "traceparent": traceparent},
        )
        call = self.spawned[0].received()[-1]
        self.assertEqual(call["params"]["_meta"], {"traceparent": traceparent})

    @run
    async def test_two_sessions_share_one_initialized_child(self) -> None:
        first = await self.start()
        second = await self.initialize()
        await self.echo(first, "a")
        await self.echo(second, "b")
        methods = [m.get("method") for m in self.spawned[0].received()]
        self.assertEqual(methods.count("initialize"), 1)
        self.assertEqual(methods.count("notifications/initialized"), 1)

    @run
    async def test_killed_then_restarted_through_the_session_repair(self) -> None:
        session = await self.start()
        await self.echo(session, "before")
        hanging = self.call(session, "tools/call", {"name": "local__hang", "arguments": {}}, 2)
        await self.network.settle()
        self.spawned[0].exit(signal=9)
        failed = await hanging
        self.assertEqual(failed["error"]["data"]["backend"], "local")
        answer = await self.echo(session, "after", 3)
        self.assertEqual(answer["result"]["content"][0]["text"], "101: after")
        self.assertEqual(len(self.spawned), 2)
