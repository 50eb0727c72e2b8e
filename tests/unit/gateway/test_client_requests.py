"""A backend's requests to the client (2025-11-25 client/elicitation, sampling, roots):
URL-mode elicitation relayed only to clients that declared it, its completion notice,
the URL-elicitation-required error passed on intact, and late joiners told what the
client can answer (the capabilities sealed in the session id)."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import ensureDeferred, gatherResults

from aigw.config import BackendConfig
from aigw.protocol import jsonrpc
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import Collect, GatewayTestCase, modern, routing, sse_messages
from tests.unit.memory import run

URL_ASK = {
    "jsonrpc": "2.0",
    "id": 41,
    "method": "elicitation/create",
    "params": {
        "mode": "url",
        "message": "Connect your account",
        "url": "https://idp.example/connect?e=7",
        "elicitationId": "e-7",
    },
}
COMPLETE = {
    "jsonrpc": "2.0",
    "method": "notifications/elicitation/complete",
    "params": {"elicitationId": "e-7"},
}
#: client/elicitation "URL Elicitation Required Error".
REQUIRED = {
    "code": jsonrpc.URL_ELICITATION_REQUIRED,
    "message": "This request requires more information.",
    "data": {
        "elicitations": [
            {
                "mode": "url",
                "elicitationId": "e-8",
                "url": "https://idp.example/connect?e=8",
                "message": "Authorization is required.",
            }
        ]
    },
}


class ClientRequestsTestCase(GatewayTestCase):
    async def beta_stream(self, session: str) -> tuple[list[bytes], Collect]:
        """The session's GET stream, once beta's stream under it is open."""
        self.beta.get_status = 200
        response = await self.open_stream(session)
        chunks: list[bytes] = []
        reader = Collect(chunks)
        response.deliverBody(reader)
        await self.until(lambda: self.beta.stream_requests)
        return chunks, reader

    def answers_to(self, request_id: int) -> list[Any]:
        """What beta received as answers to its request ``request_id``."""
        return [
            body
            for _, body in self.beta.received
            if isinstance(body, dict) and body.get("id") == request_id and "method" not in body
        ]


class UrlElicitationTests(ClientRequestsTestCase):
    @run
    async def test_url_elicitation_reaches_a_client_that_declared_it(self) -> None:
        """The request, its answer and the completion notice go through."""
        await self.start_gateway()
        session = await self.initialize(capabilities={"elicitation": {"form": {}, "url": {}}})
        chunks, reader = await self.beta_stream(session)
        self.beta.push(URL_ASK)
        self.beta.push(COMPLETE)
        await self.until(lambda: b"elicitation/complete" in b"".join(chunks))
        relayed = sse_messages(b"".join(chunks))
        ask = next(m for m in relayed if m.get("method") == "elicitation/create")
        self.assertEqual(ask["params"], URL_ASK["params"])
        self.assertIn(COMPLETE, relayed)
        answer = {"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept"}}
        response, _ = await self.post(answer, session, {"MCP-Protocol-Version": "2025-11-25"})
        self.assertEqual(response.code, 202)
        await self.until(lambda: self.answers_to(41))
        self.assertEqual(self.answers_to(41)[0]["result"], {"action": "accept"})
        reader.transport.stopProducing()  # type: ignore[union-attr]

    @run
    async def test_url_elicitation_is_refused_for_a_form_only_client(self) -> None:
        """``elicitation: {}`` is form only: the backend is told, the client never asked."""
        await self.start_gateway()
        session = await self.initialize(capabilities={"elicitation": {}})
        chunks, reader = await self.beta_stream(session)
        self.beta.push(URL_ASK)
        await self.until(lambda: self.answers_to(41))
        error = self.answers_to(41)[0]["error"]
        self.assertEqual(error["code"], jsonrpc.INVALID_PARAMS)
        self.assertEqual(
            error["data"], {"reason": "client_capability", "capability": "elicitation.url"}
        )
        self.assertIn("elicitation.url", error["message"])
        self.assertNotIn(b"elicitation/create", b"".join(chunks))
        reader.transport.stopProducing()  # type: ignore[union-attr]

    @run
    async def test_sampling_is_refused_for_a_client_without_it(self) -> None:
        await self.start_gateway()
        session = await self.initialize(capabilities={"roots": {}})
        _, reader = await self.beta_stream(session)
        self.beta.push({"jsonrpc": "2.0", "id": 42, "method": "sampling/createMessage"})
        await self.until(lambda: self.answers_to(42))
        error = self.answers_to(42)[0]["error"]
        self.assertEqual(error["code"], jsonrpc.METHOD_NOT_FOUND)
        self.assertEqual(error["data"]["capability"], "sampling")
        reader.transport.stopProducing()  # type: ignore[union-attr]

    @run
    async def test_url_elicitation_required_error_passes_intact(self) -> None:
        """-32042 from a backend's tools/call reaches a session client as it was sent."""
        await self.start_gateway()
        session = await self.initialize(capabilities={"elicitation": {"url": {}}})
        self.beta.refuse_with = (200, REQUIRED)
        body = await self.call(session, "tools/call", {"name": "beta__t0"}, rid=5)
        self.assertEqual(body, {"jsonrpc": "2.0", "id": 5, "error": REQUIRED})

    @run
    async def test_url_elicitation_required_error_reaches_a_2026_client_intact(self) -> None:
        """Across eras: a 2026-07-28 client over a session backend gets the same error."""
        await self.start_gateway()
        listed, _ = await self.post(modern("tools/list"), headers=routing("tools/list"))
        self.assertEqual(listed.code, 200)  # beta's tools are known (screening saw them)
        self.beta.refuse_with = (200, REQUIRED)
        response, body = await self.post(
            modern("tools/call", {"name": "beta__t0"}, rid="c1"),
            headers=routing("tools/call", "beta__t0"),
        )
        self.assertEqual(response.code, 200, body)
        self.assertEqual(body, {"jsonrpc": "2.0", "id": "c1", "error": REQUIRED})

    @run
    async def test_url_elicitation_required_error_from_a_2026_backend_passes_intact(self) -> None:
        """The other way across eras: a session client over a 2026-07-28-only backend."""
        await self.start_gateway(beta=FakeUpstream(tools=["t1"], modern=True))
        session = await self.initialize(capabilities={"elicitation": {"url": {}}})
        await self.call(session, "tools/list")
        self.beta.refuse_with = (200, REQUIRED)
        body = await self.call(session, "tools/call", {"name": "beta__t1"}, rid=6)
        self.assertEqual(body, {"jsonrpc": "2.0", "id": 6, "error": REQUIRED})


class LateJoinerCapabilitiesTests(ClientRequestsTestCase):
    @run
    async def test_a_late_joiner_is_told_what_the_client_can_answer(self) -> None:
        """A backend down at initialize gets the client's capabilities when it joins,
        from the sealed session id (a fresh gateway process opens it the same way)."""
        await self.start_gateway()
        declared = {"sampling": {}, "elicitation": {"url": {}}, "roots": {"listChanged": True}}
        self.beta.fail_with = 500
        session = await self.initialize(capabilities={**declared, "experimental": {"x": {}}})
        self.beta.fail_with = None
        self.service.gateway.sessions.codec._opened.clear()  # as another process would
        body = await self.call(session, "tools/list")
        self.assertIn("beta__t0", [t["name"] for t in body["result"]["tools"]])
        inits = [b for _, b in self.beta.received if b.get("method") == "initialize"]
        self.assertEqual(inits[-1]["params"]["capabilities"], declared)
        alpha_init = next(b for _, b in self.alpha.received if b.get("method") == "initialize")
        self.assertEqual(
            alpha_init["params"]["capabilities"], {**declared, "experimental": {"x": {}}}
        )

    @run
    async def test_a_repaired_session_keeps_the_clients_capabilities(self) -> None:
        await self.start_gateway()
        session = await self.initialize(capabilities={"sampling": {}})
        self.beta.sessions.clear()  # the backend restarted and forgot aigw's session
        body = await self.call(session, "tools/call", {"name": "beta__t0"})
        self.assertIn("result", body, json.dumps(body))
        inits = [b for _, b in self.beta.received if b.get("method") == "initialize"]
        self.assertEqual(len(inits), 2)
        self.assertEqual(inits[-1]["params"]["capabilities"], {"sampling": {}})


class PingTests(ClientRequestsTestCase):
    """basic/utilities/ping: a backend's ping is answered by aigw, its peer, at once
    with an empty result, never relayed nor refused (``protocol/ping.py``)."""

    @run
    async def test_a_ping_during_a_call_is_answered_by_aigw_not_relayed(self) -> None:
        await self.start_gateway(beta=FakeUpstream(tools=["pinger"]))
        session = await self.initialize(capabilities={"sampling": {}})
        body = await self.call_tool(session, "beta__pinger")
        relayed = sse_messages(body) if isinstance(body, bytes) else [body]
        self.assertEqual([m for m in relayed if "method" in m], [])
        self.assertEqual(relayed[-1]["result"]["content"][0]["text"], "{}")
        (pong,) = [b for _, b in self.beta.received if "method" not in b]
        self.assertEqual((pong["id"][:1], pong["result"]), ("s", {}))  # the backend's own id

    @run
    async def test_a_ping_on_the_get_stream_is_answered_whatever_the_client_declared(
        self,
    ) -> None:
        await self.start_gateway()
        session = await self.initialize()  # declares nothing: a request would be refused
        chunks, reader = await self.beta_stream(session)
        self.beta.push({"jsonrpc": "2.0", "id": 43, "method": "ping"})
        self.beta.push(COMPLETE)
        await self.until(lambda: b"elicitation/complete" in b"".join(chunks))
        await self.until(lambda: self.answers_to(43))
        self.assertEqual(self.answers_to(43), [{"jsonrpc": "2.0", "id": 43, "result": {}}])
        self.assertNotIn(b'"ping"', b"".join(chunks))
        reader.transport.stopProducing()  # type: ignore[union-attr]

    @run
    async def test_a_ping_during_aigws_own_request_is_answered(self) -> None:
        """aigw's own requests (the lists it fetches) take no client: the ping is
        answered all the same, on the session it came on."""
        await self.start_gateway()
        self.beta.list_questions = ["ping"]
        session = await self.initialize()
        self.assertIn("beta__t0", await self.tool_names(session))
        await self.until(lambda: [b for _, b in self.beta.received if "method" not in b])
        pongs = [b for _, b in self.beta.received if "method" not in b]
        for pong in pongs:
            self.assertEqual((pong["id"][:1], pong["result"]), ("l", {}))

    @run
    async def test_a_ping_during_initialize_is_answered_before_any_session(self) -> None:
        """beta answers aigw's ``initialize`` only once its ping on that reply is
        answered: aigw answers it there, with the ``Mcp-Session-Id`` the reply's head
        assigned and no ``MCP-Protocol-Version`` (none negotiated yet), so beta joins."""
        beta = FakeUpstream(tools=["t0"])
        beta.ping_on_init = True
        await self.start_gateway(beta=beta)
        session = await self.initialize()
        self.assertIn("beta__t0", await self.tool_names(session))
        ((headers, pong),) = [(h, b) for h, b in self.beta.received if "method" not in b]
        self.assertEqual((pong["id"][:1], pong["result"]), ("i", {}))
        self.assertEqual(headers["mcp-session-id"], ["up-1"])
        self.assertNotIn("mcp-protocol-version", headers)

    @run
    async def test_a_ping_during_a_sessionless_initialize_is_answered_without_a_session(
        self,
    ) -> None:
        """A backend that assigns no session (basic/transports "Session Management")
        is answered as every later request to it goes: without ``Mcp-Session-Id``."""
        beta = FakeUpstream(tools=["t0"], sessionless=True)
        beta.ping_on_init = True
        await self.start_gateway(beta=beta)
        session = await self.initialize()
        self.assertIn("beta__t0", await self.tool_names(session))
        ((headers, pong),) = [(h, b) for h, b in self.beta.received if "method" not in b]
        self.assertEqual(pong["result"], {})
        self.assertNotIn("mcp-session-id", headers)

    @run
    async def test_pings_holding_every_request_slot_are_answered_all_the_same(self) -> None:
        """beta (``max_connections: 2``) pings on each of two concurrent calls and
        answers neither until its ping is: the two calls hold both request slots, so
        pongs waiting for one would wait for the calls' timeout; answers have slots of
        their own (``Upstream.respond``), and both calls end with the pong's result."""
        self.beta = FakeUpstream(tools=["pinger"])
        url = self.start_upstream(self.beta)
        await self.start_gateway_with(
            BackendConfig(name="beta", url=url, timeout=5.0, max_connections=2)
        )
        session = await self.initialize()
        calls = [
            ensureDeferred(self.call(session, "tools/call", {"name": "beta__pinger"}, rid))
            for rid in (1, 2)
        ]
        bodies = await gatherResults(calls)
        for body in bodies:
            relayed = sse_messages(body) if isinstance(body, bytes) else [body]
            (answer,) = [m for m in relayed if "id" in m]
            self.assertEqual(answer["result"]["content"][0]["text"], "{}", answer)
        pongs = [b for _, b in self.beta.received if "method" not in b]
        self.assertEqual([(p["id"][:1], p["result"]) for p in pongs], [("s", {})] * 2)


class EarlyRequestTests(ClientRequestsTestCase):
    """A backend's request other than ping on the reply of a request aigw makes of its
    own (``exchange.refused_own``) is refused at once, not left to its timeout."""

    @run
    async def test_a_request_during_initialize_is_refused_and_the_backend_joins(self) -> None:
        """beta answers ``initialize`` only once its ping and then its ``roots/list``
        on that reply are answered: the ``roots/list`` gets -32601, reason
        ``own_request``, on the session the reply's head assigned."""
        beta = FakeUpstream(tools=["t0"])
        beta.ping_on_init = True
        beta.init_questions = ["ping", "roots/list"]
        await self.start_gateway(beta=beta)
        session = await self.initialize(capabilities={"roots": {}})
        self.assertIn("beta__t0", await self.tool_names(session))
        answers = [(h, b) for h, b in self.beta.received if "method" not in b]
        ((_, pong), (headers, refused)) = answers
        self.assertEqual(pong["result"], {})
        self.assertEqual(refused["id"], pong["id"] + ".1")
        self.assertEqual(refused["error"]["code"], jsonrpc.METHOD_NOT_FOUND)
        self.assertEqual(refused["error"]["data"], {"reason": "own_request"})
        self.assertTrue(refused["error"]["message"].startswith("roots/list: "))
        self.assertEqual(headers["mcp-session-id"], ["up-1"])

    @run
    async def test_a_request_during_aigws_own_list_is_refused_and_the_list_kept(self) -> None:
        """``tools/list`` is aigw's own request (``Exchange.ask``): beta's ping on its
        reply is answered, its ``sampling/createMessage`` refused at once (-32601,
        ``own_request``) though the client can sample, and the list still arrives."""
        await self.start_gateway()
        self.beta.list_questions = ["ping", "sampling/createMessage"]
        session = await self.initialize(capabilities={"sampling": {}})
        self.assertIn("beta__t0", await self.tool_names(session))
        await self.until(lambda: len([b for _, b in self.beta.received if "method" not in b]) > 1)
        by_id = {b["id"]: b for _, b in self.beta.received if "method" not in b}
        (ping_id,) = [i for i in by_id if not i.endswith(".1")]
        self.assertEqual(by_id[ping_id]["result"], {})
        refused = by_id[ping_id + ".1"]
        self.assertEqual(refused["error"]["code"], jsonrpc.METHOD_NOT_FOUND)
        self.assertEqual(refused["error"]["data"], {"reason": "own_request"})
        self.assertTrue(refused["error"]["message"].startswith("sampling/createMessage: "))
