"""A small in-process MCP server (Streamable HTTP) for the gateway's unit tests.

It speaks just enough of MCP to exercise routing: sessions, paginated lists,
JSON and SSE replies, server-to-client requests on a POST stream, and it
records what it received so tests can check what aigw forwarded.
"""

from __future__ import annotations

import io
import itertools
import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request


def sse(message: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return (head + "data: " + json.dumps(message) + "\n\n").encode()


class FakeUpstream(Resource):
    isLeaf = True

    def __init__(
        self,
        tools: list[str] | None = None,
        page_size: int = 100,
        capabilities: dict[str, Any] | None = None,
        instructions: str | None = None,
        modern: bool = False,
        sessionless: bool = False,
    ) -> None:
        super().__init__()
        #: A stateless 2025-11-25 server: initialize answers without Mcp-Session-Id.
        self.sessionless = sessionless
        #: Speak 2026-07-28 only: server/discover, no sessions, envelope required.
        self.modern = modern
        self.tools = tools if tools is not None else ["echo", "progress"]
        self.page_size = page_size
        self.capabilities = capabilities or {"tools": {"listChanged": True}, "logging": {}}
        self.instructions = instructions
        self.sessions: set[str] = set()
        self._session_numbers = itertools.count(1)
        self.received: list[tuple[dict[str, list[str]], Any]] = []
        self.fail_with: int | None = None
        #: (HTTP status, JSON-RPC error) to answer requests with, the error in the body.
        self.refuse_with: tuple[int, dict[str, Any]] | None = None
        self.forget_sessions = False
        #: Set: the next initialize is answered only when it fires.
        self.init_hold: Deferred[None] | None = None
        #: Answer an unknown session with 400 instead of 404.
        self.unknown_session_400 = False
        self.hold: Deferred[None] | None = None
        self.get_status = 405
        self.stream_requests: list[Request] = []
        #: GET streams whose connection aigw closed.
        self.streams_closed: list[Request] = []
        #: Set: GET streams answer only when it fires.
        self.get_hold: Deferred[None] | None = None
        #: Set: a GET while another GET stream of its session is open gets 409, as the
        #: MCP SDK servers answer ("Only one SSE stream is allowed per session").
        self.one_stream = False
        #: GET requests answered 409 for that.
        self.conflicts: list[Request] = []
        self.deleted: list[str] = []
        self.listen_filters: list[dict[str, Any]] = []
        self.hung_up: list[Any] = []
        #: inputSchema per tool name (default: an empty object schema)
        self.schemas: dict[str, dict[str, Any]] = {}
        #: More of each listed tool per name (description, annotations...), as given.
        self.details: dict[str, dict[str, Any]] = {}
        #: What prompts/list answers (whole Prompt objects).
        self.prompts: list[dict[str, Any]] = []
        #: What ``tools/list``'s reply stream asks the client before its answer, without
        #: waiting for the answers (ids ``l<id>``, then ``l<id>.<n>``).
        self.list_questions: list[str] = []
        #: Set: ``initialize`` pings the client on its reply stream (id ``i<id>``) and
        #: answers only once the pong came, as a server checking its peer first would.
        self.ping_on_init = False
        #: With ``ping_on_init``: what ``initialize``'s reply asks, in turn, each once
        #: the answer before it came (ids ``i<id>``, then ``i<id>.<n>``).
        self.init_questions = ["ping"]
        #: The ``ask`` tool's questions to the client, by id, waiting for its answer.
        self.awaiting: dict[str, Deferred[Any]] = {}

    def _headers(self, request: Request) -> dict[str, list[str]]:
        return {
            k.decode().lower(): [v.decode() for v in vs]
            for k, vs in request.requestHeaders.getAllRawHeaders()
        }

    def render_DELETE(self, request: Request) -> bytes:
        session = request.getHeader(b"mcp-session-id")
        if session:
            self.deleted.append(session.decode())
            self.sessions.discard(session.decode())
        return b""

    def render_GET(self, request: Request) -> Any:
        if self.get_status != 200:
            request.setResponseCode(self.get_status)
            return b""
        if self.one_stream and self._open_streams(request.getHeader(b"mcp-session-id")):
            self.conflicts.append(request)
            request.setResponseCode(409)
            return b'{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Conflict"}}'
        self.stream_requests.append(request)
        request.notifyFinish().addErrback(lambda _: self.streams_closed.append(request))

        def answer(_: object = None) -> None:
            request.setHeader(b"content-type", b"text/event-stream")
            request.write(b": open\n\n")

        if self.get_hold is not None:
            self.get_hold.addCallback(answer)
        else:
            answer()
        return NOT_DONE_YET

    def _open_streams(self, session: bytes | None) -> list[Request]:
        """The GET streams of ``session`` whose connection is not closed."""
        return [
            request
            for request in self.stream_requests
            if request not in self.streams_closed
            and request.getHeader(b"mcp-session-id") == session
        ]

    def push(self, message: Any, event_id: str | None = None) -> None:
        """Send a message on every open GET stream."""
        for request in self.stream_requests:
            request.write(sse(message, event_id))

    def prime(self, event_id: str, data_line: bool = True) -> None:
        """Send an event of an id and no message on every open GET stream: a priming
        event (2025-11-25 basic/transports, SEP-1699: an id and empty data), or, without
        ``data_line``, an event of an id alone (not dispatched, its id kept: WHATWG)."""
        event = f"id: {event_id}\n" + ("data: \n" if data_line else "") + "\n"
        for request in self.stream_requests:
            request.write(event.encode())

    def render_POST(self, request: Request) -> Any:
        body = json.loads(request.content.read())
        self.received.append((self._headers(request), body))
        if self.fail_with is not None:
            request.setResponseCode(self.fail_with)
            return b"upstream broke"
        if self.refuse_with is not None and isinstance(body, dict) and "id" in body:
            status, error = self.refuse_with
            request.setResponseCode(status)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"jsonrpc": "2.0", "id": body["id"], "error": error}).encode()
        if self.modern:
            return self._modern(request, body)
        if isinstance(body, dict) and body.get("method") == "initialize":
            if self.init_hold is not None:
                held, self.init_hold = self.init_hold, None
                held.addCallback(lambda _: self._release(request, body))
                return NOT_DONE_YET
            session = f"up-{next(self._session_numbers)}"
            self.sessions.add(session)
            if not self.sessionless:
                request.setHeader(b"mcp-session-id", session.encode())
            result: dict[str, Any] = {
                "protocolVersion": body["params"]["protocolVersion"],
                "capabilities": self.capabilities,
                "serverInfo": {"name": "fake", "version": "1"},
            }
            if self.instructions:
                result["instructions"] = self.instructions
            answer = {"jsonrpc": "2.0", "id": body["id"], "result": result}
            if self.ping_on_init:
                return self._ping_first(request, f"i{body['id']}", answer)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(answer).encode()
        session = (request.getHeader(b"mcp-session-id") or b"").decode()
        if not self.sessionless and (self.forget_sessions or session not in self.sessions):
            if self.unknown_session_400:
                # What the TypeScript SDK 1.x servers (server-everything) answer.
                request.setResponseCode(400)
                return (
                    b'{"jsonrpc":"2.0","error":{"code":-32000,'
                    b'"message":"Bad Request: No valid session ID provided"}}'
                )
            request.setResponseCode(404)
            return (
                b'{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}'
            )
        if "id" not in body or "method" not in body:
            waiting = self.awaiting.pop(str(body.get("id")), None)
            if waiting is not None:
                waiting.callback(body)  # the client's answer to the ask tool's question
            request.setResponseCode(202)
            return b""
        return self._answer(request, body)

    def _ping_first(self, request: Request, ping_id: str, answer: dict[str, Any]) -> Any:
        """Ask ``init_questions`` on the reply stream, each once the one before is
        answered, and send ``answer`` once the last answer is in."""
        request.setHeader(b"content-type", b"text/event-stream")
        questions = list(enumerate(self.init_questions))

        def ask_next(_: Any = None) -> None:
            if not questions:
                request.write(sse(answer))
                request.finish()
                return
            n, method = questions.pop(0)
            qid = f"{ping_id}.{n}" if n else ping_id
            question: dict[str, Any] = {"jsonrpc": "2.0", "id": qid, "method": method}
            if method != "ping":
                question["params"] = {}
            request.write(sse(question))
            self.awaiting[qid] = Deferred()
            self.awaiting[qid].addCallback(ask_next)

        ask_next()
        return NOT_DONE_YET

    def _release(self, request: Request, body: Any) -> None:
        """Answer a held initialize (unless aigw hung up meanwhile)."""
        if request._disconnected:
            return
        request.content = io.BytesIO(json.dumps(body).encode())
        self.received.pop()  # counted once, when it arrived
        request.write(self.render_POST(request))
        request.finish()

    def _schema(self, name: str) -> dict[str, Any]:
        return self.schemas.get(name, {"type": "object"})

    def _modern(self, request: Request, body: dict[str, Any]) -> Any:
        """2026-07-28: every request stands alone and must carry the envelope and
        routing headers; results carry resultType (and cache hints on lists)."""
        meta = (body.get("params") or {}).get("_meta") or {}
        version = request.getHeader(b"mcp-protocol-version")
        if (
            version != b"2026-07-28"
            or meta.get("io.modelcontextprotocol/protocolVersion") != "2026-07-28"
        ):
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"application/json")
            error = {"code": -32022, "message": "Unsupported protocol version"}
            error["data"] = {"supported": ["2026-07-28"], "requested": version and version.decode()}
            return json.dumps({"jsonrpc": "2.0", "id": body.get("id"), "error": error}).encode()
        if request.getHeader(b"mcp-method") != body["method"].encode():
            request.setResponseCode(400)
            return b'{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"mismatch"}}'
        if body["method"] == "subscriptions/listen":
            request.setHeader(b"content-type", b"text/event-stream")
            tag = {"io.modelcontextprotocol/subscriptionId": body["id"]}
            ack = {
                "jsonrpc": "2.0",
                "method": "notifications/subscriptions/acknowledged",
                "params": {"_meta": tag, "notifications": body["params"]["notifications"]},
            }
            request.write(sse(ack))
            self.listen_filters.append(body["params"]["notifications"])
            self.stream_requests.append(request)
            return NOT_DONE_YET
        if body["method"] == "server/discover":
            result = {
                "resultType": "complete",
                "supportedVersions": ["2026-07-28"],
                "capabilities": self.capabilities,
                "ttlMs": 0,
                "cacheScope": "public",
            }
            return self._json(request, body["id"], result)
        if body["method"] == "tools/list":
            tools = [{"name": n, "inputSchema": self._schema(n)} for n in self.tools]
            result = {"tools": tools, "resultType": "complete", "ttlMs": 0, "cacheScope": "public"}
            return self._json(request, body["id"], result)
        if body["method"] == "tools/call" and body["params"]["name"] == "hang":
            # Sends nothing, not even headers, until the caller goes away.
            request.notifyFinish().addErrback(lambda _: self.hung_up.append(body["id"]))
            return NOT_DONE_YET
        if body["method"] == "tools/call" and body["params"]["name"] == "needs-input":
            # basic/patterns/mrtr: ask once, answer the retry that echoes the state.
            params = body["params"]
            if params.get("requestState") == "state-1":
                answers = json.dumps(params.get("inputResponses"))
                result = {"content": [{"type": "text", "text": answers}]}
                return self._json(request, body["id"], {**result, "resultType": "complete"})
            ask = {"method": "elicitation/create", "params": {"message": "Name?"}}
            result = {
                "resultType": "input_required",
                "inputRequests": {"who": ask},
                "requestState": "state-1",
            }
            return self._json(request, body["id"], result)
        if body["method"] == "tools/call" and body["params"]["name"] == "needs-url":
            # A URL elicitation as 2026-07-28 writes it: no elicitationId.
            url = {"mode": "url", "message": "Sign in", "url": "https://connect.example/x"}
            result = {
                "resultType": "input_required",
                "inputRequests": {"go": {"method": "elicitation/create", "params": url}},
            }
            if body["params"].get("inputResponses"):
                result = {"resultType": "complete", "content": []}
            return self._json(request, body["id"], result)
        if body["method"] == "tools/call" and body["params"]["name"] == "nag":
            # Asks again on every retry: a round bound must stop it.
            ask = {"method": "roots/list", "params": {}}
            result = {"resultType": "input_required", "inputRequests": {"r": ask}}
            return self._json(request, body["id"], {**result, "requestState": "again"})
        if body["method"] == "tools/call" and body["params"]["name"] == "bad-input":
            result = {"resultType": "input_required", "inputRequests": {"x": {"method": "evil"}}}
            return self._json(request, body["id"], result)
        if body["method"] == "tools/call":
            text = json.dumps(body["params"].get("arguments") or {})
            result = {"content": [{"type": "text", "text": text}], "resultType": "complete"}
            return self._json(request, body["id"], result)
        request.setResponseCode(404)
        return self._json(request, body["id"], None, {"code": -32601, "message": "not found"})

    def _answer(self, request: Request, body: dict[str, Any]) -> Any:
        method, params, rid = body["method"], body.get("params") or {}, body["id"]
        if method == "tools/list":
            start = int(params.get("cursor") or 0)
            page = self.tools[start : start + self.page_size]
            result: dict[str, Any] = {
                "tools": [
                    {"name": n, "inputSchema": self._schema(n), **self.details.get(n, {})}
                    for n in page
                ]
            }
            if start + self.page_size < len(self.tools):
                result["nextCursor"] = str(start + self.page_size)
            if self.list_questions:
                request.setHeader(b"content-type", b"text/event-stream")
                for n, method in enumerate(self.list_questions):
                    question: dict[str, Any] = {
                        "jsonrpc": "2.0",
                        "id": f"l{rid}.{n}" if n else f"l{rid}",
                        "method": method,
                    }
                    if method != "ping":
                        question["params"] = {}
                    request.write(sse(question))
                request.write(sse({"jsonrpc": "2.0", "id": rid, "result": result}))
                request.finish()
                return NOT_DONE_YET
            return self._json(request, rid, result)
        if method == "tools/call" and params.get("name") == "progress":
            request.setHeader(b"content-type", b"text/event-stream")
            token = (params.get("_meta") or {}).get("progressToken")
            request.write(
                sse(
                    {
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": 1, "total": 2},
                    }
                )
            )
            done = {
                "jsonrpc": "2.0",
                "id": rid,
                "result": {"content": [{"type": "text", "text": "finished"}]},
            }
            gone: list[object] = []
            request.notifyFinish().addErrback(gone.append)

            def finish(_: object = None) -> None:
                if not gone:  # aigw may have dropped the stream (cancellation)
                    request.write(sse(done))
                    request.finish()

            if self.hold is not None:
                self.hold.addCallback(finish)
            else:
                finish()
            return NOT_DONE_YET
        if method == "tools/call" and params.get("name") == "log":
            # Logs at three levels on the call's stream, whatever the session's level.
            request.setHeader(b"content-type", b"text/event-stream")
            for level in ("debug", "warning", "error"):
                log = {"level": level, "logger": "fake", "data": f"at {level}"}
                request.write(
                    sse({"jsonrpc": "2.0", "method": "notifications/message", "params": log})
                )
            done = {"jsonrpc": "2.0", "id": rid, "result": {"content": []}}
            request.write(sse(done))
            request.finish()
            return NOT_DONE_YET
        if method == "tools/call" and params.get("name") == "ask":
            asked = {"messages": [], "maxTokens": 5}
            return self._ask(request, rid, "sampling/createMessage", asked)
        if method == "tools/call" and params.get("name") == "pinger":
            return self._ask(request, rid, "ping")  # basic/utilities/ping
        if method == "tools/call" and params.get("name") == "link":
            return self._json(
                request,
                rid,
                {"content": [{"type": "resource_link", "uri": "file:///data/x.txt", "name": "x"}]},
            )
        if method == "tools/call":
            if params.get("name") not in self.tools:
                return self._json(request, rid, None, {"code": -32602, "message": "Unknown tool"})
            return self._json(
                request,
                rid,
                {"content": [{"type": "text", "text": json.dumps(params.get("arguments") or {})}]},
            )
        if method == "prompts/list":
            return self._json(request, rid, {"prompts": self.prompts})
        if method == "prompts/get":
            text = json.dumps(params.get("arguments") or {})
            message = {"role": "user", "content": {"type": "text", "text": text}}
            return self._json(request, rid, {"messages": [message]})
        if method == "resources/read":
            contents = [{"uri": params.get("uri"), "text": "contents"}]
            return self._json(request, rid, {"contents": contents})
        if method in ("logging/setLevel", "resources/subscribe", "resources/unsubscribe"):
            return self._json(request, rid, {})
        return self._json(request, rid, None, {"code": -32601, "message": "Method not found"})

    def _ask(
        self, request: Request, rid: Any, method: str, params: dict[str, Any] | None = None
    ) -> Any:
        """Ask the client (sampling/createMessage, ping) on the call's stream, then answer
        with what it said (2025-11-25 client/sampling, basic/utilities/ping)."""
        request.setHeader(b"content-type", b"text/event-stream")
        question = f"s{rid}"
        asking: dict[str, Any] = {"jsonrpc": "2.0", "id": question, "method": method}
        if params is not None:
            asking["params"] = params
        request.write(sse(asking))
        gone: list[object] = []
        request.notifyFinish().addErrback(gone.append)

        def answered(answer: Any) -> None:
            if gone:
                return
            said = answer["result"] if "result" in answer else answer.get("error")
            text = {"content": [{"type": "text", "text": json.dumps(said)}]}
            request.write(sse({"jsonrpc": "2.0", "id": rid, "result": text}))
            request.finish()

        self.awaiting[question] = Deferred()
        self.awaiting[question].addCallback(answered)
        return NOT_DONE_YET

    def _json(self, request: Request, rid: Any, result: Any, error: Any = None) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid}
        if error is not None:
            message["error"] = error
        else:
            message["result"] = result
        return json.dumps(message).encode()
