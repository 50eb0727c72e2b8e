"""A session client over a 2026-07-28 backend that answers ``input_required``: aigw asks
the client itself on the call's stream and retries upstream with its answers
(basic/patterns/mrtr; ``aigw/gateway/asking.py``)."""

from __future__ import annotations

import json
from typing import Any

from aigw.config import SessionsConfig
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import (
    PUBLIC_URL,
    SHARED_KEY,
    Collect,
    GatewayTestCase,
    HangUp,
    sse_messages,
)
from tests.unit.memory import run


class AskingTestCase(GatewayTestCase):
    """alpha speaks 2025-11-25, beta only 2026-07-28 and asks for input."""

    async def start(self, capabilities: dict[str, Any], **sessions: Any) -> str:
        beta = FakeUpstream(tools=["needs-input", "needs-url", "nag"], modern=True)
        await self.start_gateway(beta=beta, sessions=SessionsConfig(**sessions))
        return await self.initialize(capabilities=capabilities)

    async def answer(self, session: str, request: dict[str, Any], result: Any) -> None:
        """The client's response to aigw's request, on a POST of its own."""
        reply = {"jsonrpc": "2.0", "id": request["id"], "result": result}
        response, _ = await self.post(reply, session, {"MCP-Protocol-Version": "2025-11-25"})
        self.assertEqual(response.code, 202)


class AskingTests(AskingTestCase):
    @run
    async def test_the_client_is_asked_on_the_call_stream_and_the_retry_carries_its_answer(
        self,
    ) -> None:
        session = await self.start({"elicitation": {}})
        response = await self.stream_call(session, 7, {"name": "beta__needs-input"})
        chunks: list[bytes] = []
        response.deliverBody(Collect(chunks))
        await self.until(lambda: sse_messages(b"".join(chunks)))
        asked = sse_messages(b"".join(chunks))[0]
        self.assertEqual(asked["method"], "elicitation/create")
        self.assertEqual(asked["params"], {"message": "Name?"})
        # The backend was told what the session client declared ("Server Requirements" 7).
        envelope = self.beta.received[-1][1]["params"]["_meta"]
        self.assertEqual(
            envelope["io.modelcontextprotocol/clientCapabilities"], {"elicitation": {}}
        )
        await self.answer(session, asked, {"action": "accept", "content": {"name": "Ada"}})
        await self.until(lambda: len(sse_messages(b"".join(chunks))) == 2)
        final = sse_messages(b"".join(chunks))[1]
        self.assertEqual(final["id"], 7)
        self.assertNotIn("resultType", final["result"])
        self.assertIn("Ada", final["result"]["content"][0]["text"])
        retry = self.beta.received[-1][1]["params"]
        self.assertEqual(retry["requestState"], "state-1")  # echoed as the backend sent it
        self.assertEqual(
            retry["inputResponses"], {"who": {"action": "accept", "content": {"name": "Ada"}}}
        )

    @run
    async def test_a_url_elicitation_gets_the_elicitation_id_2025_11_25_requires(self) -> None:
        """client/elicitation "URL Mode" (2025-11-25): elicitationId is required; 2026-07-28
        dropped it, so aigw makes one up for the session client."""
        session = await self.start({"elicitation": {"url": {}}})
        response = await self.stream_call(session, 8, {"name": "beta__needs-url"})
        chunks: list[bytes] = []
        response.deliverBody(Collect(chunks))
        await self.until(lambda: sse_messages(b"".join(chunks)))
        asked = sse_messages(b"".join(chunks))[0]
        self.assertEqual(asked["params"]["mode"], "url")
        self.assertIsInstance(asked["params"]["elicitationId"], str)
        await self.answer(session, asked, {"action": "accept"})
        await self.until(lambda: len(sse_messages(b"".join(chunks))) == 2)
        self.assertIn("result", sse_messages(b"".join(chunks))[1])

    @run
    async def test_a_client_without_the_capability_gets_the_precise_error(self) -> None:
        session = await self.start({"sampling": {}})
        body = await self.call(session, "tools/call", {"name": "beta__needs-input"})
        self.assertEqual(body["error"]["code"], -32021)
        self.assertEqual(body["error"]["data"]["reason"], "missing_capability")
        # client/elicitation "Capabilities": the mode asked for (form, when none is named).
        self.assertEqual(body["error"]["data"]["capability"], "elicitation.form")
        self.assertIn("'beta'", body["error"]["message"])

    @run
    async def test_a_client_that_does_not_answer_is_given_up_on(self) -> None:
        session = await self.start({"elicitation": {}}, input_timeout=5.0)
        body = await self.call(session, "tools/call", {"name": "beta__needs-input"})
        messages = sse_messages(body)
        self.assertEqual(messages[0]["method"], "elicitation/create")
        self.assertEqual(messages[1]["error"]["data"]["reason"], "input_timeout")
        self.assertEqual(len(self.service.gateway.questions), 0)

    @run
    async def test_rounds_are_bounded(self) -> None:
        session = await self.start({"roots": {}}, input_max_rounds=2)
        response = await self.stream_call(session, 3, {"name": "beta__nag"})
        chunks: list[bytes] = []
        response.deliverBody(Collect(chunks))
        for round_number in (1, 2):
            await self.until(lambda n=round_number: len(sse_messages(b"".join(chunks))) == n)
            asked = sse_messages(b"".join(chunks))[-1]
            self.assertEqual(asked["method"], "roots/list")
            await self.answer(session, asked, {"roots": []})
        await self.until(lambda: len(sse_messages(b"".join(chunks))) == 3)
        final = sse_messages(b"".join(chunks))[-1]
        self.assertEqual(final["error"]["data"]["reason"], "input_rounds")
        self.assertIn("sessions.input_max_rounds", final["error"]["message"])

    @run
    async def test_a_forged_answer_is_dropped(self) -> None:
        session = await self.start({"elicitation": {}}, input_timeout=5.0)
        response = await self.stream_call(session, 4, {"name": "beta__needs-input"})
        chunks: list[bytes] = []
        response.deliverBody(Collect(chunks))
        await self.until(lambda: sse_messages(b"".join(chunks)))
        asked = sse_messages(b"".join(chunks))[0]
        forged = {**asked, "id": asked["id"][:-4] + "AAAA"}
        await self.answer(session, forged, {"action": "accept", "content": {"name": "Eve"}})
        self.assertEqual(len(self.service.gateway.questions), 1)  # still waiting
        await self.answer(session, asked, {"action": "decline"})
        await self.until(lambda: len(sse_messages(b"".join(chunks))) == 2)
        self.assertIn("decline", json.dumps(sse_messages(b"".join(chunks))[1]))


class CancelTests(AskingTestCase):
    @run
    async def test_a_client_going_away_stops_the_wait(self) -> None:
        """basic/utilities/cancellation: the client hung up on the call's stream while aigw
        waited for its answer; nothing waits any more."""
        session = await self.start({"elicitation": {}})
        response = await self.stream_call(session, 5, {"name": "beta__needs-input"})
        hang_up = HangUp()
        response.deliverBody(hang_up)
        first = await hang_up.got
        self.assertIn(b"elicitation/create", first)
        await self.until(lambda: len(self.service.gateway.questions) == 0)
        self.assertEqual(self.service.gateway.calls._inflight, {})


class TwoProcessTests(AskingTestCase):
    """The client's answer lands on another process of the deployment: forwarded to the
    one whose call waits for it (docs/scale-out.md)."""

    @run
    async def test_an_answer_landing_elsewhere_is_forwarded_to_the_waiting_call(self) -> None:
        session = await self.start(
            {"elicitation": {}}, secret=SHARED_KEY, peer_url=PUBLIC_URL + "/mcp"
        )
        other = self.start_peer(1976)
        response = await self.stream_call(session, 7, {"name": "beta__needs-input"})
        chunks: list[bytes] = []
        response.deliverBody(Collect(chunks))
        await self.until(lambda: sse_messages(b"".join(chunks)))
        asked = sse_messages(b"".join(chunks))[0]
        self.url = "http://127.0.0.1:1976/mcp"  # the answer's POST lands on the other process
        await self.answer(session, asked, {"action": "accept", "content": {"name": "Ada"}})
        await self.until(lambda: len(sse_messages(b"".join(chunks))) == 2)
        self.assertIn("Ada", sse_messages(b"".join(chunks))[1]["result"]["content"][0]["text"])
        self.assertEqual(len(self.service.gateway.questions), 0)
        self.assertEqual(len(other.gateway.questions), 0)
