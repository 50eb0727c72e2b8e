"""A 2026-07-28 client over a session backend that asks it something mid-call: aigw
answers ``input_required`` with its own sealed ``requestState``, parks the upstream call
and resumes it when the client retries (basic/patterns/mrtr; ``aigw/gateway/parking.py``)."""

from __future__ import annotations

from typing import Any

from aigw.config import BackendConfig, SessionsConfig
from aigw.protocol import jsonrpc
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import (
    PUBLIC_URL,
    SHARED_KEY,
    GatewayTestCase,
    modern,
    routing,
)
from tests.unit.memory import run

SAMPLING = {"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}
ANSWER = {"role": "assistant", "content": {"type": "text", "text": "four"}, "model": "m"}


class ParkingTests(GatewayTestCase):
    """alpha speaks 2025-11-25 with sessions; its ``ask`` tool samples the client."""

    async def start(self, **sessions: Any) -> None:
        alpha = FakeUpstream(tools=["ask", "echo", "pinger"])
        await self.start_gateway(beta=alpha, sessions=SessionsConfig(**sessions))
        self.asker = alpha

    async def call(  # type: ignore[override]
        self, params: dict[str, Any], rid: int = 1, meta: dict[str, Any] | None = None
    ) -> Any:
        """A 2026-07-28 tools/call of beta's tool; the JSON-RPC answer."""
        params = {"arguments": {}, **params, "_meta": meta if meta is not None else SAMPLING}
        response, body = await self.post(
            modern("tools/call", params, rid), headers=routing("tools/call", params["name"])
        )
        self.assertEqual(response.code, 200, body)
        return body

    def asked(self) -> list[Any]:
        """What the backend received that answers its questions."""
        return [b for _, b in self.asker.received if "method" not in b]

    @run
    async def test_the_backends_question_becomes_input_required_and_the_retry_resumes_it(
        self,
    ) -> None:
        await self.start()
        body = await self.call({"name": "beta__ask"})
        result = body["result"]
        self.assertEqual(result["resultType"], "input_required")
        (key, question), *_ = result["inputRequests"].items()
        self.assertEqual(question["method"], "sampling/createMessage")
        self.assertEqual(question["params"]["maxTokens"], 5)
        self.assertEqual(len(self.service.gateway.calls.parking), 1)
        retry = {"name": "beta__ask", "inputResponses": {key: ANSWER}}
        body = await self.call({**retry, "requestState": result["requestState"]}, rid=2)
        self.assertEqual(body["id"], 2)
        self.assertEqual(body["result"]["resultType"], "complete")
        self.assertIn("four", body["result"]["content"][0]["text"])
        self.assertTrue(self.asked()[-1]["id"].startswith("s"))  # the backend's own id
        self.assertEqual(self.asked()[-1]["result"], ANSWER)
        self.assertEqual(len(self.service.gateway.calls.parking), 0)

    @run
    async def test_a_tampered_request_state_is_invalid_params(self) -> None:
        await self.start()
        result = (await self.call({"name": "beta__ask"}))["result"]
        state = result["requestState"]
        forged = state[:-6] + ("AAAAAA" if not state.endswith("AAAAAA") else "BBBBBB")
        body = await self.call({"name": "beta__ask", "requestState": forged}, rid=2)
        self.assertEqual(body["error"]["code"], -32602)
        self.assertEqual(body["error"]["data"]["reason"], "invalid_request_state")

    @run
    async def test_a_request_state_answers_only_its_own_request(self) -> None:
        await self.start()
        result = (await self.call({"name": "beta__ask"}))["result"]
        other = {"name": "beta__ask", "arguments": {"x": 1}, "requestState": result["requestState"]}
        body = await self.call(other, rid=2)
        self.assertEqual(body["error"]["code"], -32602)
        self.assertIn("another request", body["error"]["message"])

    @run
    async def test_a_call_not_resumed_in_time_is_cancelled_upstream(self) -> None:
        await self.start(park_timeout=2.0)  # within the backend timeout (5 s)
        result = (await self.call({"name": "beta__ask"}))["result"]
        self.reactor.advance(3)
        await self.network.settle()
        self.assertEqual(len(self.service.gateway.calls.parking), 0)
        cancelled = [
            b for _, b in self.asker.received if b.get("method") == "notifications/cancelled"
        ]
        self.assertEqual(cancelled[0]["params"]["reason"], "input not given in time")
        retry = {"name": "beta__ask", "requestState": result["requestState"]}
        body = await self.call(retry, rid=2)
        self.assertEqual(body["error"]["code"], -32602)
        self.assertIn("expired", body["error"]["message"])

    @run
    async def test_a_question_the_client_cannot_answer_is_refused_to_the_backend(self) -> None:
        """mrtr "Server Requirements" 7: no sampling declared, so it is not asked."""
        await self.start()
        body = await self.call({"name": "beta__ask"}, meta={})
        self.assertEqual(body["result"]["resultType"], "complete")
        refusal = self.asked()[-1]["error"]
        self.assertEqual(refusal["code"], jsonrpc.METHOD_NOT_FOUND)
        self.assertEqual(refusal["data"], {"reason": "client_capability", "capability": "sampling"})
        self.assertIn("did not declare sampling", refusal["message"])

    @run
    async def test_a_ping_mid_call_is_answered_by_aigw_not_parked(self) -> None:
        """basic/utilities/ping: the backend's peer is aigw, which answers at once; a
        2026-07-28 client is not asked (``protocol/ping.py``)."""
        await self.start()
        body = await self.call({"name": "beta__pinger"})
        self.assertEqual(body["result"]["resultType"], "complete")
        self.assertEqual(body["result"]["content"][0]["text"], "{}")
        (pong,) = self.asked()
        self.assertEqual((pong["id"][:1], pong["result"]), ("s", {}))  # the backend's own id
        self.assertEqual(len(self.service.gateway.calls.parking), 0)

    @run
    async def test_parked_calls_are_bounded(self) -> None:
        await self.start(max_parked=1)
        first = (await self.call({"name": "beta__ask"}))["result"]
        self.assertEqual(first["resultType"], "input_required")
        second = await self.call({"name": "beta__ask"}, rid=2)
        self.assertEqual(second["result"]["resultType"], "complete")
        refusal = self.asked()[-1]["error"]
        self.assertEqual(refusal["code"], jsonrpc.METHOD_NOT_FOUND)
        self.assertEqual(refusal["data"], {"reason": "parked_calls_full"})
        self.assertIn("sessions.max_parked", refusal["message"])

    @run
    async def test_a_retry_for_a_call_parked_in_another_process_needs_its_peer_url(self) -> None:
        await self.start()
        result = (await self.call({"name": "beta__ask"}))["result"]
        self.service.gateway.calls.parking.process = "another"  # as if it were another process
        retry = {"name": "beta__ask", "requestState": result["requestState"]}
        body = await self.call(retry, rid=2)
        self.assertEqual(body["error"]["code"], -32602)
        self.assertEqual(body["error"]["data"]["reason"], "parked_elsewhere")
        self.assertIn("sessions.peer_url", body["error"]["message"])

    @run
    async def test_other_calls_of_a_2026_client_are_not_parked(self) -> None:
        await self.start()
        body = await self.call({"name": "beta__echo", "arguments": {"a": 1}})
        self.assertEqual(body["result"]["resultType"], "complete")
        self.assertEqual(len(self.service.gateway.calls.parking), 0)


class TwoProcessTests(GatewayTestCase):
    """Two aigw processes sharing one key, each reachable by the other at its peer_url:
    a retry that lands on the process not holding its parked call is forwarded once."""

    @run
    async def test_a_retry_landing_elsewhere_is_forwarded_to_the_parked_call(self) -> None:
        alpha = FakeUpstream(tools=["ask"])
        await self.start_gateway_with(
            BackendConfig(name="alpha", url=self.start_upstream(alpha), timeout=5.0),
            sessions=SessionsConfig(secret=SHARED_KEY, peer_url=PUBLIC_URL + "/mcp"),
        )
        holder = self.service
        other = self.start_peer(1976)

        params = {"name": "alpha__ask", "arguments": {}, "_meta": SAMPLING}
        _, body = await self.post(
            modern("tools/call", params), headers=routing("tools/call", "alpha__ask")
        )
        result = body["result"]
        (question, _), *_ = result["inputRequests"].items()
        retry = {**params, "inputResponses": {question: ANSWER}}
        retry["requestState"] = result["requestState"]
        self.url = "http://127.0.0.1:1976/mcp"  # the next POST lands on the other process
        _, body = await self.post(
            modern("tools/call", retry, 2), headers=routing("tools/call", "alpha__ask")
        )
        self.assertEqual(body["id"], 2, body)
        self.assertEqual(body["result"]["resultType"], "complete")
        self.assertIn("four", body["result"]["content"][0]["text"])
        self.assertEqual(len(holder.gateway.calls.parking), 0)
        self.assertEqual(len(other.gateway.calls.parking), 0)

    @run
    async def test_a_forwarded_retry_is_never_forwarded_again(self) -> None:
        await self.start_gateway(beta=FakeUpstream(tools=["ask"]))
        params = {"name": "beta__ask", "arguments": {}, "_meta": SAMPLING}
        _, body = await self.post(
            modern("tools/call", params), headers=routing("tools/call", "beta__ask")
        )
        self.service.gateway.calls.parking.process = "another"
        # What a peer would have sealed: this process's own URL, so a second hop would loop.
        retry = {**params, "requestState": body["result"]["requestState"]}
        headers = {**routing("tools/call", "beta__ask"), "Aigw-Forwarded": "1"}
        _, body = await self.post(modern("tools/call", retry, 2), headers=headers)
        self.assertEqual(body["error"]["code"], -32602)
        self.assertEqual(body["error"]["data"]["reason"], "parked_elsewhere")
