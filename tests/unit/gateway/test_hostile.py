"""Hostile clients and upstreams against a real GatewayService on a memory network.

Each test cites the MCP 2025-11-25 section (basic/transports) or RFC whose
rule it checks.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.web.server import NOT_DONE_YET, Request

from aigw.config import BackendConfig
from aigw.protocol import jsonrpc
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import GatewayTestCase
from tests.unit.memory import run

PROTOCOL = {"MCP-Protocol-Version": "2025-11-25"}


def within(d: Deferred[Any], seconds: float, clock: IReactorTime) -> Deferred[Any]:
    """``d``, failing with TimeoutError (a hang) after ``seconds``."""
    return d.addTimeout(seconds, clock)


class TricklingUpstream(FakeUpstream):
    """Answers tools/call with ``status`` and the first byte of a body that never ends;
    with ``drip`` it adds a byte every 50 ms of ``clock``, for ever."""

    def __init__(
        self, status: int, content_type: bytes, clock: IReactorTime, drip: bool = False
    ) -> None:
        super().__init__(tools=["echo"])
        self.status, self.content_type = status, content_type
        self.trickling: list[Request] = []
        self.loop = LoopingCall(self._drip)
        self.loop.clock = clock
        self.drip = drip

    def _drip(self) -> None:
        for request in self.trickling:
            if not request.finished and not request._disconnected:
                request.write(b" ")

    def render_POST(self, request: Request) -> Any:
        peek = request.content.read()
        request.content.seek(0)
        body = json.loads(peek)
        if isinstance(body, dict) and body.get("method") == "tools/call":
            request.setResponseCode(self.status)
            request.setHeader(b"content-type", self.content_type)
            request.write(b"{")
            self.trickling.append(request)
            if self.drip and not self.loop.running:
                self.loop.start(0.05, now=False)
            return NOT_DONE_YET
        return super().render_POST(request)

    def end(self) -> None:
        if self.loop.running:
            self.loop.stop()
        for request in self.trickling:
            if not request.finished and not request._disconnected:
                request.finish()


class SSEPingForeverUpstream(FakeUpstream):
    """Answers tools/call with an SSE stream of comments that never carries the response."""

    def __init__(self) -> None:
        super().__init__(tools=["echo"])
        self.streams: list[Request] = []

    def render_POST(self, request: Request) -> Any:
        peek = request.content.read()
        request.content.seek(0)
        body = json.loads(peek)
        if isinstance(body, dict) and body.get("method") == "tools/call":
            request.setHeader(b"content-type", b"text/event-stream")
            request.write(b": ping\n\n")
            self.streams.append(request)
            return NOT_DONE_YET
        return super().render_POST(request)

    def ping(self) -> None:
        for request in self.streams:
            if not request.finished and not request._disconnected:
                request.write(b": ping\n\n")


class OddReplyUpstream(FakeUpstream):
    """Answers tools/call with ``reply(request, id)``'s bytes, or by closing mid-body."""

    def __init__(self, reply: str) -> None:
        super().__init__(tools=["echo"])
        self.reply = reply

    def render_POST(self, request: Request) -> Any:
        peek = request.content.read()
        request.content.seek(0)
        body = json.loads(peek)
        if not (isinstance(body, dict) and body.get("method") == "tools/call"):
            return super().render_POST(request)
        request.setHeader(b"content-type", b"application/json")
        if self.reply == "huge":
            filler = "x" * (20 * 1024 * 1024)
            return json.dumps(
                {"jsonrpc": "2.0", "id": body["id"], "result": {"f": filler}}
            ).encode()
        if self.reply == "not json":
            return b'{"jsonrpc": "2.0", "id": ' + str(body["id"]).encode() + b', "result": '
        # Promise 1000 bytes, send 10, hang up.
        request.setHeader(b"content-length", b"1000")
        request.write(b'{"jsonrpc"')
        assert request.channel is not None
        request.channel.transport.loseConnection()
        return NOT_DONE_YET


class WrongIdUpstream(FakeUpstream):
    """Answers tools/call with a JSON-RPC response carrying another id."""

    def render_POST(self, request: Request) -> Any:
        peek = request.content.read()
        request.content.seek(0)
        body = json.loads(peek)
        if isinstance(body, dict) and body.get("method") == "tools/call":
            return self._json(request, body["id"] + 1000, {"content": []})
        return super().render_POST(request)


class HostileUpstreams(GatewayTestCase):
    async def gateway_for(self, upstream: FakeUpstream) -> str:
        await self.start_gateway_with(
            BackendConfig(name="up", url=self.start_upstream(upstream), timeout=1.0)
        )
        return await self.initialize()

    async def tool_call(self, session: str) -> Any:
        message = {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "up__echo", "arguments": {}},
        }
        d: Deferred[Any] = Deferred.fromCoroutine(self.post(message, session, PROTOCOL))
        return await within(d, 8.0, self.reactor)

    async def error_from(self, upstream: TricklingUpstream) -> Any:
        """The client's answer to a tools/call the trickling upstream never finishes."""
        session = await self.gateway_for(upstream)
        try:
            response, body = await self.tool_call(session)
        finally:
            upstream.end()
        self.assertEqual(response.code, 200)
        self.assertEqual(body["id"], 5)
        return body

    @run
    async def test_upstream_error_body_that_never_ends_times_out(self) -> None:
        """basic/transports + product rule "never a hang": the backend timeout bounds an
        HTTP error reply's body too.  _excerpt awaits treq.content() with no deadline
        (the timeout in _send ends at the response headers), so the client waits for ever.
        """
        body = await self.error_from(TricklingUpstream(500, b"text/plain", self.reactor))
        self.assertEqual(body["error"]["code"], jsonrpc.UPSTREAM_UNAVAILABLE)
        self.assertEqual(body["error"]["data"]["reason"], "http_error")

    @run
    async def test_json_reply_trickled_byte_by_byte_times_out(self) -> None:
        """Product rule "never a hang": a 200 JSON answer must be whole within the backend
        timeout; a backend dripping a byte every 50 ms (each gap far below the 1 s timeout)
        no longer holds the call for ever."""
        body = await self.error_from(
            TricklingUpstream(200, b"application/json", self.reactor, drip=True)
        )
        self.assertEqual(body["error"]["code"], jsonrpc.UPSTREAM_TIMEOUT)

    @run
    async def test_upstream_response_with_another_id_is_an_error(self) -> None:
        """JSON-RPC 2.0 §5: a response carries the id of its request; any other is no answer."""
        session = await self.gateway_for(WrongIdUpstream(tools=["echo"]))
        response, body = await self.tool_call(session)
        self.assertEqual(response.code, 200)
        self.assertEqual(body["id"], 5)
        self.assertIn("error", body)

    @run
    async def test_upstream_reply_over_the_bound_is_an_error(self) -> None:
        """Product rule "never unbounded memory": a 20 MB JSON reply is cut off at
        the backend's ``max_message_bytes`` (16 MiB) and becomes a JSON-RPC error
        (UPSTREAM_BAD_REPLY) for the client's request.
        """
        session = await self.gateway_for(OddReplyUpstream("huge"))
        response, body = await self.tool_call(session)
        self.assertEqual(response.code, 200)
        self.assertEqual(body["id"], 5)
        self.assertEqual(body["error"]["code"], jsonrpc.UPSTREAM_BAD_REPLY)
        self.assertEqual(body["error"]["data"]["reason"], "bad_reply")

    @run
    async def test_upstream_reply_that_is_not_json_is_an_error(self) -> None:
        """JSON-RPC 2.0 §5: an unparseable reply is no answer: a bad_reply error."""
        session = await self.gateway_for(OddReplyUpstream("not json"))
        response, body = await self.tool_call(session)
        self.assertEqual(response.code, 200)
        self.assertEqual(body["error"]["data"]["reason"], "bad_reply")

    @run
    async def test_upstream_closing_mid_body_is_an_error(self) -> None:
        """RFC 9112 §6.3: a body shorter than its Content-Length is incomplete: an error."""
        session = await self.gateway_for(OddReplyUpstream("cut"))
        response, body = await self.tool_call(session)
        self.assertEqual(response.code, 200)
        self.assertEqual(body["id"], 5)
        self.assertEqual(body["error"]["code"], jsonrpc.UPSTREAM_UNAVAILABLE)

    @run
    async def test_sse_reply_of_keepalives_only_times_out(self) -> None:
        """basic/transports (POST answered with an SSE stream) + "never a hang": a backend
        that keeps its stream alive with comments but never sends the response must hit
        the backend timeout; every chunk re-armed the inactivity timer, so it never did.
        """
        upstream = SSEPingForeverUpstream()
        session = await self.gateway_for(upstream)
        pinger = LoopingCall(upstream.ping)
        pinger.clock = self.reactor
        pinger.start(0.3)
        try:
            response, body = await self.tool_call(session)
        finally:
            pinger.stop()
            for request in upstream.streams:
                if not request.finished and not request._disconnected:
                    request.finish()
        self.assertEqual(response.code, 200)
        self.assertEqual(body["error"]["code"], jsonrpc.UPSTREAM_TIMEOUT)


class HostileClients(GatewayTestCase):
    @run
    async def test_cancel_with_unhashable_request_id_is_ignored(self) -> None:
        """basic/utilities/cancellation: requestId is a RequestId (string or integer); an
        object is invalid and MUST be ignored, not raise TypeError (unhashable) in the
        gateway, which logged a traceback for every such notification.
        """
        await self.start_gateway()
        session = await self.initialize()
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": {"a": [1]}},
        }
        response, _ = await self.post(cancel, session, PROTOCOL)
        self.assertEqual(response.code, 202)
        body = await self.call(session, "ping")
        self.assertEqual(body["result"], {})
        self.assertEqual(self.flushLoggedErrors(), [])

    @run
    async def test_client_headers_never_reach_the_backend(self) -> None:
        """MCP Authorization "Token Passthrough" + RFC 9110 §5.5: only aigw's own and the
        configured static headers go upstream; a client's Authorization, Cookie or a
        header smuggling attempt is not forwarded.
        """
        await self.start_gateway()
        session = await self.initialize()
        message = {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "tools/call",
            "params": {"name": "alpha__echo", "arguments": {}},
        }
        headers = {
            **PROTOCOL,
            "Authorization": "Bearer client-token",
            "Cookie": "sid=1",
            "X-Forwarded-Host": "evil.example",
        }
        response, body = await self.post(message, session, headers)
        self.assertEqual(response.code, 200, body)
        sent, _ = self.alpha.received[-1]
        for name in ("authorization", "cookie", "x-forwarded-host"):
            self.assertNotIn(name, sent)


class HostileParams(GatewayTestCase):
    @run
    async def test_non_string_resource_uri_is_invalid_params(self) -> None:
        """JSON-RPC 2.0 §5.1: wrong parameter types are -32602, not "resource not found"."""
        await self.start_gateway()
        session = await self.initialize()
        body = await self.call(session, "resources/read", {"uri": 42})
        self.assertEqual(body["error"]["code"], -32602)

    @run
    async def test_tool_arguments_and_meta_must_be_objects(self) -> None:
        """server/tools CallToolRequest: ``arguments`` and ``_meta`` are objects; anything
        else is -32602 from aigw, never passed to the backend."""
        await self.start_gateway()
        session = await self.initialize()
        before = len(self.alpha.received)
        for params in (
            {"name": "alpha__echo", "arguments": [1, 2]},
            {"name": "alpha__echo", "arguments": "text"},
            {"name": "alpha__echo", "arguments": {}, "_meta": 7},
        ):
            body = await self.call(session, "tools/call", params)
            self.assertEqual(body["error"]["code"], -32602, params)
        calls = [b for _, b in self.alpha.received[before:] if b.get("method") == "tools/call"]
        self.assertEqual(calls, [])

    @run
    async def test_params_given_by_position_are_invalid(self) -> None:
        """MCP requests take params as an object; an array is -32602, not read as {}."""
        await self.start_gateway()
        session = await self.initialize()
        _, body = await self.post(
            {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": []},
            session,
            {"MCP-Protocol-Version": "2025-11-25"},
        )
        self.assertEqual(body["error"]["code"], -32602)
