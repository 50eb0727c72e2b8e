"""Session and routing attacks (issue 16 item 2) against the real gateway.

Each test sends hostile requests to the real ``GatewayService`` on the memory
network, with auth on (two users, alice and bob, with tokens of one issuer),
in front of two fake MCP servers, and checks the precise answer: the HTTP
status, the JSON-RPC error code where there is one, and that no MCP server saw
what it must not.  Rules: MCP 2025-11-25 basic/transports ("Session
Management", "Security Warning"), server/utilities/pagination, basic
(responses), the MCP security best practices ("Session Hijacking"), RFC 9110.

The first docstring line of each test is the case and its ``expected:`` line
the answer, as ``make security-report`` copies them into docs/security.md.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import treq
from twisted.web.server import Site

from aigw.protocol import jsonrpc
from aigw.sealed.cursor import CursorCodec
from aigw.sealed.request_id import RequestIdCodec
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import SessionCodec, SessionState
from tests.unit.auth.helpers import (
    ISSUER,
    RSA_KEY,
    FakeAuthorizationServer,
    auth_config,
    claims,
    jwks,
    mint,
    public_jwk,
)
from tests.unit.gateway.helpers import (
    ACCEPT,
    PUBLIC_URL,
    GatewayTestCase,
    initialize_message,
    modern,
    routing,
    sse_messages,
)
from tests.unit.memory import EPOCH, run

RESOURCE = PUBLIC_URL + "/mcp"
VERSION = "2025-11-25"


def binding(session_id: str) -> str:
    """What cursors and relayed ids of a session are bound to (client_sessions.py)."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


class SessionAttackTestCase(GatewayTestCase):
    """alpha and beta behind a gateway with auth on; alice and bob hold tokens."""

    async def start(self) -> None:
        authz = FakeAuthorizationServer()
        authz.serve("/jwks", jwks(public_jwk(RSA_KEY, "rsa-1", alg="RS256")))
        port = self.network.serve(Site(authz, reactor=self.reactor))
        auth = auth_config(
            audiences=(RESOURCE,),
            jwks_uri=f"http://127.0.0.1:{port}/jwks",
            relay_authorization_server_metadata=False,
        )
        await self.start_gateway(auth=auth)
        self.alpha.get_status = 200
        await self.network.settle()

    def headers(self, user: str, session: str | None = None, **extra: str) -> dict[str, str]:
        token = mint(claims(aud=RESOURCE, sub=user, exp=int(EPOCH) + 3600))
        headers = {"Authorization": f"Bearer {token}", "MCP-Protocol-Version": VERSION}
        if session is not None:
            headers["Mcp-Session-Id"] = session
        headers.update(extra)
        return headers

    async def open_session(self, user: str) -> str:
        message = initialize_message(VERSION)
        message["params"]["capabilities"] = {"roots": {}}  # backends may ask for roots
        response, body = await self.post(message, headers=self.headers(user))
        self.assertEqual(response.code, 200, body)
        session: str = response.headers.getRawHeaders(b"mcp-session-id")[0].decode()
        return session

    async def send(self, user: str, session: str, message: Any, **extra: str) -> tuple[Any, Any]:
        return await self.post(message, headers=self.headers(user, session, **extra))

    def upstream_traffic(self) -> int:
        """How many messages the MCP servers received so far."""
        return len(self.alpha.received) + len(self.beta.received)

    def assertSessionNotFound(self, answer: tuple[Any, Any]) -> None:
        """basic/transports "Session Management": 404, and -32001 in the body."""
        response, body = answer
        self.assertEqual(response.code, 404, body)
        self.assertEqual(body["error"]["code"], jsonrpc.SESSION_NOT_FOUND)

    async def list_page(self, user: str, session: str, cursor: str | None = None) -> Any:
        params = {} if cursor is None else {"cursor": cursor}
        message = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": params}
        response, body = await self.send(user, session, message)
        self.assertEqual(response.code, 200, body)
        return body


PING = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


class SessionIdAttacks(SessionAttackTestCase):
    @run
    async def test_another_users_session_id_is_404(self) -> None:
        """Bob presents alice's `Mcp-Session-Id` with his own valid token (MCP security
        best practices "Session Hijacking"; basic/transports "Session Management").

        expected: 404, JSON-RPC -32001; no MCP server sees the request
        """
        await self.start()
        alices = await self.open_session("alice")
        before = self.upstream_traffic()
        self.assertSessionNotFound(await self.send("bob", alices, PING))
        self.assertEqual(self.upstream_traffic(), before)

    @run
    async def test_forged_session_id_is_404(self) -> None:
        """A well-formed session id for alice sealed with another key (another gateway's,
        or an attacker's): basic/transports "Session Management".

        expected: 404, JSON-RPC -32001; no MCP server sees the request
        """
        await self.start()
        await self.open_session("alice")
        state = SessionState(ISSUER, "alice", EPOCH, VERSION, ())
        forged = SessionCodec(Sealer.random(), self.reactor, 3600.0).issue(state)
        before = self.upstream_traffic()
        self.assertSessionNotFound(await self.send("alice", forged, PING))
        self.assertEqual(self.upstream_traffic(), before)

    @run
    async def test_truncated_session_id_is_404(self) -> None:
        """Alice's own session id, its last four characters cut off.

        expected: 404, JSON-RPC -32001; no MCP server sees the request
        """
        await self.start()
        alices = await self.open_session("alice")
        before = self.upstream_traffic()
        self.assertSessionNotFound(await self.send("alice", alices[:-4], PING))
        self.assertEqual(self.upstream_traffic(), before)

    @run
    async def test_session_id_replayed_after_delete_is_404(self) -> None:
        """Alice's session id replayed after she ended it with DELETE (basic/transports
        "Session Management": a terminated session's id MUST be answered 404).

        expected: 404, JSON-RPC -32001; no MCP server sees the request
        """
        await self.start()
        alices = await self.open_session("alice")
        response = await self.http.delete(
            self.url, headers={k: [v] for k, v in self.headers("alice", alices).items()}
        )
        await treq.content(response)
        self.assertEqual(response.code, 204)
        before = self.upstream_traffic()
        self.assertSessionNotFound(await self.send("alice", alices, PING))
        self.assertEqual(self.upstream_traffic(), before)


class CursorAttacks(SessionAttackTestCase):
    async def assertInvalidCursor(self, user: str, session: str, cursor: str) -> None:
        """server/utilities/pagination "Error Handling": -32602, and no backend listed."""
        before = self.upstream_traffic()
        body = await self.list_page(user, session, cursor)
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS, body)
        self.assertEqual(self.upstream_traffic(), before)

    async def first_cursor(self, user: str, session: str) -> str:
        """The cursor of the first page (beta lists 5 tools, 2 a page)."""
        cursor: str = (await self.list_page(user, session))["result"]["nextCursor"]
        return cursor

    @run
    async def test_forged_cursor_is_invalid_params(self) -> None:
        """A well-formed cursor for alice's session sealed with another key
        (server/utilities/pagination: cursors are opaque; aigw's are sealed).

        expected: 200, JSON-RPC -32602; no MCP server is asked for a page
        """
        await self.start()
        alices = await self.open_session("alice")
        forged = CursorCodec(Sealer.random()).encode({"beta": "2"}, binding(alices), "tools/list")
        await self.assertInvalidCursor("alice", alices, forged)

    @run
    async def test_truncated_cursor_is_invalid_params(self) -> None:
        """Alice's own cursor, its last four characters cut off.

        expected: 200, JSON-RPC -32602; no MCP server is asked for a page
        """
        await self.start()
        alices = await self.open_session("alice")
        cursor = await self.first_cursor("alice", alices)
        await self.assertInvalidCursor("alice", alices, cursor[:-4])

    @run
    async def test_cursor_replayed_after_delete_is_invalid_params(self) -> None:
        """Alice's cursor replayed in her new session after she ended the old one.

        expected: 200, JSON-RPC -32602 (a cursor is bound to its session)
        """
        await self.start()
        old = await self.open_session("alice")
        cursor = await self.first_cursor("alice", old)
        response = await self.http.delete(
            self.url, headers={k: [v] for k, v in self.headers("alice", old).items()}
        )
        await treq.content(response)
        new = await self.open_session("alice")
        await self.assertInvalidCursor("alice", new, cursor)

    @run
    async def test_another_users_cursor_is_invalid_params(self) -> None:
        """Bob presents alice's cursor in his own session.

        expected: 200, JSON-RPC -32602; no MCP server is asked for a page
        """
        await self.start()
        alices = await self.open_session("alice")
        cursor = await self.first_cursor("alice", alices)
        bobs = await self.open_session("bob")
        await self.assertInvalidCursor("bob", bobs, cursor)

    @run
    async def test_another_users_stateless_cursor_is_invalid_params(self) -> None:
        """Bob presents alice's cursor in a 2026-07-28 (sessionless) request: there a
        cursor is bound to its user (server/utilities/pagination).

        expected: 200, JSON-RPC -32602; no MCP server is asked for a page
        """
        await self.start()

        async def tools_list(user: str, cursor: str | None = None) -> Any:
            params = {} if cursor is None else {"cursor": cursor}
            headers = {**self.headers(user), **routing("tools/list")}
            response, body = await self.post(modern("tools/list", params), headers=headers)
            self.assertEqual(response.code, 200, body)
            return body

        cursor = (await tools_list("alice"))["result"]["nextCursor"]
        await tools_list("bob")  # bob's pooled upstream sessions are open
        before = self.upstream_traffic()
        body = await tools_list("bob", cursor)
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS, body)
        self.assertEqual(self.upstream_traffic(), before)


class RelayedIdAttacks(SessionAttackTestCase):
    """Server-to-client requests reach the client with sealed ids; the client's answer
    goes back only to the backend that asked, in the session it asked."""

    async def relayed_request(self, session: str) -> tuple[str, list[bytes], Any]:
        """alpha asks alice's session ``roots/list`` (upstream id 99) on her GET stream:
        the id alice sees, the stream's chunks and its end."""
        response = await self.http.get(
            self.url,
            headers={
                "Accept": ["text/event-stream"],
                **{k: [v] for k, v in self.headers("alice", session).items()},
            },
            unbuffered=True,
        )
        chunks: list[bytes] = []
        done = treq.collect(response, chunks.append)
        await self.until(lambda: self.alpha.stream_requests)
        self.alpha.push({"jsonrpc": "2.0", "id": 99, "method": "roots/list"})
        await self.until(lambda: b"roots/list" in b"".join(chunks))
        (asked,) = [m for m in sse_messages(b"".join(chunks)) if m.get("method") == "roots/list"]
        return asked["id"], chunks, done

    async def end_streams(self, done: Any) -> None:
        self.service.gateway.close_streams()
        await done

    def answers_upstream(self) -> list[Any]:
        """Responses (not requests) that reached either MCP server."""
        return [
            body
            for upstream in (self.alpha, self.beta)
            for _, body in upstream.received
            if isinstance(body, dict) and "method" not in body
        ]

    async def answer(self, user: str, session: str, request_id: Any) -> Any:
        message = {"jsonrpc": "2.0", "id": request_id, "result": {"roots": []}}
        response, _ = await self.send(user, session, message)
        await self.network.settle()
        return response

    @run
    async def test_forged_relayed_request_id_aimed_at_another_backend_is_dropped(self) -> None:
        """Alice answers with an id naming beta and her session, sealed with another key
        (basic: a response goes to the sender of the request; aigw seals relayed ids).

        expected: 202; the answer reaches no MCP server
        """
        await self.start()
        alices = await self.open_session("alice")
        _, _, done = await self.relayed_request(alices)
        forged = RequestIdCodec(Sealer.random()).wrap("beta", 99, binding(alices))
        response = await self.answer("alice", alices, forged)
        self.assertEqual(response.code, 202)
        self.assertEqual(self.answers_upstream(), [])
        await self.end_streams(done)

    @run
    async def test_another_users_relayed_request_id_is_dropped(self) -> None:
        """Bob answers, in his own session, the request alpha relayed to alice, with the
        sealed id alice received (MCP security best practices "Session Hijacking").

        expected: 202; the answer reaches no MCP server (alice's own answer does)
        """
        await self.start()
        alices = await self.open_session("alice")
        bobs = await self.open_session("bob")
        relayed, _, done = await self.relayed_request(alices)
        response = await self.answer("bob", bobs, relayed)
        self.assertEqual(response.code, 202)
        self.assertEqual(self.answers_upstream(), [])
        await self.answer("alice", alices, relayed)
        self.assertEqual([a["id"] for a in self.answers_upstream()], [99])
        await self.end_streams(done)

    @run
    async def test_forged_progress_notification_is_not_forwarded(self) -> None:
        """Alice sends `notifications/progress` with a progress token of a request of
        alpha's (basic/utilities/progress: progress goes to the side that asked for it).

        expected: 202; no MCP server receives it
        """
        await self.start()
        alices = await self.open_session("alice")
        before = self.upstream_traffic()
        progress = {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": 99, "progress": 1, "total": 1},
        }
        response, _ = await self.send("alice", alices, progress)
        await self.network.settle()
        self.assertEqual(response.code, 202)
        self.assertEqual(self.upstream_traffic(), before)

    @run
    async def test_progress_token_reused_by_another_user_gets_only_its_own_progress(
        self,
    ) -> None:
        """Bob calls a tool with the progress token alice uses for hers
        (basic/utilities/progress: progress is routed by request, never by token).

        expected: each reply carries exactly one progress notification, its own
        """
        await self.start()
        replies = {}
        for user in ("alice", "bob"):
            session = await self.open_session(user)
            call = {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "tools/call",
                "params": {"name": "alpha__progress", "_meta": {"progressToken": "shared"}},
            }
            _, replies[user] = await self.send(user, session, call)
        for user, reply in replies.items():
            messages = sse_messages(reply)
            progress = [m for m in messages if m.get("method") == "notifications/progress"]
            self.assertEqual(len(progress), 1, user)
            self.assertEqual(progress[0]["params"]["progressToken"], "shared")
            self.assertEqual(messages[-1]["id"], 5)


class RequestStateAttacks(SessionAttackTestCase):
    """aigw's own ``requestState``: a 2026-07-28 client's call parked while alpha asks it
    something mid-call (gateway/parking.py; basic/patterns/mrtr "Server Requirements" 4-5)."""

    async def ask(self, user: str, rid: int, extra: dict[str, Any] | None = None) -> Any:
        capable = {"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}
        params = {"name": "alpha__ask", "arguments": {}, "_meta": capable, **(extra or {})}
        headers = {**self.headers(user), **routing("tools/call", "alpha__ask")}
        response, body = await self.post(modern("tools/call", params, rid), headers=headers)
        self.assertEqual(response.code, 200, body)
        return body

    async def parked(self) -> str:
        """alice's call, parked behind input_required: its requestState."""
        await self.start()
        self.alpha.tools.append("ask")
        body = await self.ask("alice", 1)
        self.assertEqual(body["result"]["resultType"], "input_required")
        state: str = body["result"]["requestState"]
        return state

    def answered_upstream(self) -> list[Any]:
        return [b for _, b in self.alpha.received if "method" not in b]

    @run
    async def test_another_users_request_state_is_invalid_params(self) -> None:
        """Bob retries with the `requestState` of alice's parked call (mrtr "Server
        Requirements" 5: state presented by a different principal is rejected).

        expected: 200, JSON-RPC -32602; alice's call gets no answer from bob
        """
        state = await self.parked()
        answer = {"q1": {"role": "assistant", "content": {"type": "text", "text": "x"}}}
        body = await self.ask("bob", 2, {"requestState": state, "inputResponses": answer})
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS)
        self.assertEqual(self.answered_upstream(), [])

    @run
    async def test_an_altered_request_state_is_invalid_params(self) -> None:
        """Alice's own `requestState`, its last four characters changed (mrtr "Server
        Requirements" 4: state that fails verification is rejected).

        expected: 200, JSON-RPC -32602; no answer reaches the MCP server
        """
        state = await self.parked()
        altered = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
        body = await self.ask("alice", 2, {"requestState": altered, "inputResponses": {}})
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_PARAMS)
        self.assertEqual(self.answered_upstream(), [])


class OriginAndHostAttacks(SessionAttackTestCase):
    @run
    async def test_foreign_origin_is_403(self) -> None:
        """A browser request from a foreign page: `Origin: http://evil.example`
        (basic/transports "Security Warning": servers MUST validate Origin).

        expected: 403, JSON-RPC -32600; no MCP server sees the request
        """
        await self.start()
        alices = await self.open_session("alice")
        before = self.upstream_traffic()
        response, body = await self.send("alice", alices, PING, Origin="http://evil.example")
        self.assertEqual(response.code, 403, body)
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_REQUEST)
        self.assertEqual(self.upstream_traffic(), before)

    @run
    async def test_null_origin_is_403(self) -> None:
        """`Origin: null` (sandboxed frames, `file:` pages): basic/transports
        "Security Warning".

        expected: 403, JSON-RPC -32600
        """
        await self.start()
        alices = await self.open_session("alice")
        response, body = await self.send("alice", alices, PING, Origin="null")
        self.assertEqual(response.code, 403, body)
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_REQUEST)

    @run
    async def test_a_foreign_origin_hidden_before_an_allowed_one_is_403(self) -> None:
        """Two `Origin` fields, a foreign one then the gateway's own (only the last was
        checked once).

        expected: 403
        """
        await self.start()
        alices = await self.open_session("alice")
        headers = {k: [v] for k, v in self.headers("alice", alices).items()}
        response = await self.http.post(
            self.url,
            data=json.dumps(PING).encode(),
            headers={
                **headers,
                "Content-Type": ["application/json"],
                "Accept": [ACCEPT],
                "Origin": ["http://evil.example", PUBLIC_URL],
            },
        )
        await treq.content(response)
        self.assertEqual(response.code, 403)

    @run
    async def test_dns_rebinding_host_is_421(self) -> None:
        """DNS rebinding: a name the attacker controls resolving to 127.0.0.1, no Origin
        (basic/transports "Security Warning"; RFC 9110 §7.4, §15.5.20).

        expected: 421 Misdirected Request, for every path; no MCP server sees the request
        """
        await self.start()
        alices = await self.open_session("alice")
        before = self.upstream_traffic()
        for host in ("evil.example:1975", "127.0.0.1.nip.io:1975", "evil.example"):
            response, body = await self.send("alice", alices, PING, Host=host)
            self.assertEqual(response.code, 421, (host, body))
            self.assertEqual(body["error"], "misdirected_request")
            got = await self.http.get(PUBLIC_URL + "/healthz", headers={"Host": [host]})
            await treq.content(got)
            self.assertEqual(got.code, 421, host)
        self.assertEqual(self.upstream_traffic(), before)

    @run
    async def test_loopback_host_names_are_served(self) -> None:
        """`Host` values naming the loopback interface under another spelling
        (`localhost`, `[::1]`, `127.0.0.2`) when public_url is a loopback URL.

        expected: 200
        """
        await self.start()
        alices = await self.open_session("alice")
        for host in ("localhost:1975", "[::1]:1975", "127.0.0.2:1975", "LOCALHOST"):
            response, body = await self.send("alice", alices, PING, Host=host)
            self.assertEqual(response.code, 200, (host, body))
