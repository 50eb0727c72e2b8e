"""Hostile requests and upstream streams through the real gateway (issue 16 item 3).

The real ``GatewayService`` on the memory network (tests/unit/memory.py), one per
test, takes every example in turn: whatever the body, the MCP headers or an
upstream's SSE stream, each answer is a valid HTTP response whose JSON body is a
well-formed JSON-RPC answer, and the gateway still serves a ping afterwards.  A
traceback logged by the gateway fails the test (trial counts logged failures).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.web.server import NOT_DONE_YET, Request

from aigw.config import BackendConfig
from tests.unit.fuzz.strategies import FUZZ, bodies, headers, sse_streams
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import ACCEPT, GatewayTestCase

JSON_RPC_KEYS = {"jsonrpc", "id", "result", "error"}


class StreamingUpstream(FakeUpstream):
    """Answers ``tools/call`` with ``self.stream`` (SSE) in ``self.cuts`` chunks, the
    right answer put in at ``self.answer_at`` (None: never)."""

    stream = b""
    cuts: tuple[int, ...] = ()
    answer_at: int | None = None

    def _answer(self, request: Request, body: dict[str, Any]) -> Any:
        if body["method"] != "tools/call":
            return super()._answer(request, body)
        stream = self.stream
        if self.answer_at is not None:
            answer = {"jsonrpc": "2.0", "id": body["id"], "result": {"content": []}}
            event = b"\n\ndata: " + json.dumps(answer).encode() + b"\n\n"
            at = min(self.answer_at, len(stream))
            stream = stream[:at] + event + stream[at:]
        request.setHeader(b"content-type", b"text/event-stream")
        start = 0
        for cut in sorted(c for c in self.cuts if c <= len(stream)):
            request.write(stream[start:cut])
            start = cut
        request.write(stream[start:])
        request.finish()
        return NOT_DONE_YET


class FuzzTestCase(GatewayTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.upstream = StreamingUpstream(tools=["echo"])
        backend = BackendConfig(name="alpha", url=self.start_upstream(self.upstream), timeout=5.0)
        self.network.run(self.start_gateway_with(backend))
        self.session = self.network.run(self.initialize())

    def assertWellFormed(self, message: Any) -> None:
        """A JSON-RPC response: ``jsonrpc`` 2.0, an id, a result or an error object."""
        self.assertIsInstance(message, dict, message)
        self.assertLessEqual(set(message), JSON_RPC_KEYS, message)
        self.assertEqual(message.get("jsonrpc"), "2.0", message)
        self.assertIn("id", message)
        if "error" in message:
            self.assertNotIn("result", message)
            error = message["error"]
            self.assertIsInstance(error.get("code"), int, message)
            self.assertIsInstance(error.get("message"), str, message)
        else:
            self.assertIn("result", message)

    def assertAnswer(self, response: Any, content: bytes) -> None:
        """A valid HTTP answer; JSON or SSE bodies carry well-formed JSON-RPC answers."""
        self.assertTrue(200 <= response.code < 600, response.code)
        self.assertNotEqual(response.code, 500, content)
        kind = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
        if kind.startswith(b"application/json") and content:
            body = json.loads(content)
            if response.code >= 400 and isinstance(body, dict) and "jsonrpc" not in body:
                # Refused before MCP (421 for a foreign Host): aigw's own error shape.
                self.assertEqual(set(body), {"error", "error_description"}, body)
                self.assertIsInstance(body["error"], str)
                return
            for message in body if isinstance(body, list) else [body]:
                self.assertWellFormed(message)
        elif kind.startswith(b"text/event-stream"):
            for line in content.splitlines():
                if line.startswith(b"data: "):
                    message = json.loads(line[6:])
                    if "method" not in message:
                        self.assertWellFormed(message)
        else:
            self.assertIn(response.code, (202, 204), content)

    def assertServing(self) -> None:
        answer = self.network.run(self.call(self.session, "ping"))
        self.assertEqual(answer.get("result"), {}, answer)

    async def send(self, body: bytes, extra: dict[bytes, bytes]) -> tuple[Any, bytes]:
        sent = {b"Content-Type": [b"application/json"], b"Accept": [ACCEPT.encode()]}
        sent.update({name: [value] for name, value in extra.items()})
        response = await self.http.post(self.url, data=body, headers=sent)
        return response, await response.content()


class RequestFuzzTests(FuzzTestCase):
    @FUZZ
    @given(bodies, st.sampled_from(["none", "own", "junk"]))
    def test_any_body_gets_a_json_rpc_answer(self, body: bytes, session: str) -> None:
        """Any POST body, in the client's session, none or a forged one: a valid answer."""
        extra = {b"MCP-Protocol-Version": b"2025-11-25"}
        if session != "none":
            extra[b"Mcp-Session-Id"] = self.session.encode() if session == "own" else b"x" * 40
        self.assertAnswer(*self.network.run(self.send(body, extra)))
        self.assertServing()

    @FUZZ
    @given(headers, st.sampled_from([b"ping", b"tools/call", b"initialize"]), st.booleans())
    def test_any_mcp_headers_get_a_json_rpc_answer(
        self, extra: dict[bytes, bytes], method: bytes, with_session: bool
    ) -> None:
        """Random ``Mcp-Session-Id``, ``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``,
        ``Accept``, ``Content-Type``, ``Origin``, ``Host``: a valid answer."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": 3, "method": method.decode()}
        if method == b"tools/call":
            message["params"] = {"name": "alpha__echo", "arguments": {}}
        if method == b"initialize":
            message["params"] = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "fuzz", "version": "0"},
            }
        if with_session and b"Mcp-Session-Id" not in extra:
            extra = {**extra, b"Mcp-Session-Id": self.session.encode()}
        self.assertAnswer(*self.network.run(self.send(json.dumps(message).encode(), extra)))
        self.assertServing()


class UpstreamStreamFuzzTests(FuzzTestCase):
    @FUZZ
    @given(
        sse_streams,
        st.lists(st.integers(0, 600), max_size=6),
        st.none() | st.integers(0, 600),
    )
    def test_any_upstream_stream_gets_a_json_rpc_answer(
        self, stream: bytes, cuts: list[int], answer_at: int | None
    ) -> None:
        """An upstream answering ``tools/call`` with random SSE, cut anywhere, with or
        without the real answer in it: the client gets a result or an error naming the
        backend."""
        self.upstream.stream, self.upstream.cuts, self.upstream.answer_at = (
            stream,
            tuple(cuts),
            answer_at,
        )
        params = {"name": "alpha__echo", "arguments": {}}
        body = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}
        extra = {b"Mcp-Session-Id": self.session.encode(), b"MCP-Protocol-Version": b"2025-11-25"}
        response, content = self.network.run(self.send(json.dumps(body).encode(), extra))
        self.assertAnswer(response, content)
        self.assertEqual(response.code, 200, content)
        self.assertServing()
