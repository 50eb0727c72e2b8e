"""The client's log level toward both kinds of backend (2025-11-25 and 2026-07-28
server/utilities/logging): ``logging/setLevel`` from session clients, the per-request
``io.modelcontextprotocol/logLevel`` from 2026-07-28 clients."""

from __future__ import annotations

from typing import Any

import treq

from aigw.protocol import jsonrpc
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import GatewayTestCase, modern, routing, sse_messages
from tests.unit.memory import run

LEVEL = "io.modelcontextprotocol/logLevel"


class LogLevelTestCase(GatewayTestCase):
    """alpha: 2025-11-25 with sessions and a ``log`` tool; beta: 2026-07-28 only."""

    async def start_mixed(self) -> None:
        beta = FakeUpstream(tools=["t1"], modern=True)
        await self.start_gateway(beta=beta)
        self.alpha.tools.append("log")

    async def modern_call(
        self, name: str, meta: dict[str, Any], rid: Any = "c1"
    ) -> tuple[Any, Any]:
        await self.post(modern("tools/list"), headers=routing("tools/list"))
        return await self.post(
            modern("tools/call", {"name": name, "_meta": meta}, rid=rid),
            headers=routing("tools/call", name),
        )

    def sent_meta(self, upstream: FakeUpstream, method: str) -> dict[str, Any]:
        bodies = [b for _, b in upstream.received if b.get("method") == method]
        meta: dict[str, Any] = bodies[-1]["params"].get("_meta", {})
        return meta


class ModernClientTests(LogLevelTestCase):
    @run
    async def test_a_session_backends_log_messages_are_filtered_at_the_requests_level(self) -> None:
        """The pooled session is shared, so it gets no setLevel: aigw filters the call's
        stream at the request's level instead."""
        await self.start_mixed()
        response, body = await self.modern_call("alpha__log", {LEVEL: "warning"})
        self.assertEqual(response.code, 200)
        logs = [
            m["params"]["level"]
            for m in sse_messages(body)
            if m.get("method") == "notifications/message"
        ]
        self.assertEqual(logs, ["warning", "error"])
        self.assertNotIn(LEVEL, self.sent_meta(self.alpha, "tools/call"))
        self.assertNotIn("logging/setLevel", [b.get("method") for _, b in self.alpha.received])

    @run
    async def test_no_level_no_log_messages(self) -> None:
        """2026-07-28: "MUST NOT emit notifications/message for a request that does not
        include this field"."""
        await self.start_mixed()
        response, body = await self.modern_call("alpha__log", {})
        self.assertEqual(response.code, 200)
        self.assertIsInstance(body, dict)  # nothing came before the answer: plain JSON
        self.assertEqual(body["result"]["content"], [])

    @run
    async def test_a_2026_backend_gets_the_level_in_the_envelope(self) -> None:
        await self.start_mixed()
        response, _ = await self.modern_call("beta__t1", {LEVEL: "error"})
        self.assertEqual(response.code, 200)
        self.assertEqual(self.sent_meta(self.beta, "tools/call")[LEVEL], "error")

    @run
    async def test_an_unknown_level_is_invalid_params(self) -> None:
        await self.start_mixed()
        response, body = await self.modern_call("beta__t1", {LEVEL: "loud"})
        self.assertEqual(response.code, 400)
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS)
        self.assertEqual(body["id"], "c1")
        self.assertNotIn("tools/call", [b.get("method") for _, b in self.beta.received])


class SessionClientTests(LogLevelTestCase):
    @run
    async def test_set_level_goes_to_session_backends_and_rides_on_2026_requests(self) -> None:
        await self.start_mixed()
        session = await self.initialize()
        body = await self.call(session, "logging/setLevel", {"level": "notice"})
        self.assertEqual(body["result"], {})
        self.assertEqual(
            [b["params"] for _, b in self.alpha.received if b.get("method") == "logging/setLevel"],
            [{"level": "notice"}],
        )
        self.assertNotIn("logging/setLevel", [b.get("method") for _, b in self.beta.received])
        await self.call(session, "tools/list")
        await self.call(session, "tools/call", {"name": "beta__t1"})
        self.assertEqual(self.sent_meta(self.beta, "tools/call")[LEVEL], "notice")

    @run
    async def test_before_set_level_2026_backends_get_no_level(self) -> None:
        await self.start_mixed()
        session = await self.initialize()
        await self.call(session, "tools/list")
        await self.call(session, "tools/call", {"name": "beta__t1"})
        self.assertNotIn(LEVEL, self.sent_meta(self.beta, "tools/call"))

    @run
    async def test_session_clients_get_log_messages_at_their_level(self) -> None:
        """Before logging/setLevel every message (the server decides); after it, none
        below the level, even from a backend that does not filter itself."""
        await self.start_mixed()
        session = await self.initialize()
        await self.call(session, "tools/list")
        self.assertEqual(await self.logged(session, 3), ["debug", "warning", "error"])
        await self.call(session, "logging/setLevel", {"level": "error"})
        self.assertEqual(await self.logged(session, 4), ["error"])

    async def logged(self, session: str, rid: int) -> list[str]:
        response = await self.stream_call(session, rid, {"name": "alpha__log"})
        chunks: list[bytes] = []
        await treq.collect(response, chunks.append)
        messages = sse_messages(b"".join(chunks))
        return [
            m["params"]["level"] for m in messages if m.get("method") == "notifications/message"
        ]

    @run
    async def test_an_unknown_level_is_invalid_params(self) -> None:
        await self.start_mixed()
        session = await self.initialize()
        body = await self.call(session, "logging/setLevel", {"level": "chatty"})
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS)
        self.assertNotIn("logging/setLevel", [b.get("method") for _, b in self.alpha.received])
