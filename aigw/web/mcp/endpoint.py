"""The server side of MCP Streamable HTTP at ``mcp_path`` (MCP 2025-11-25 basic/transports).

POST carries one JSON-RPC message (or, for 2025-03-26 clients, a batch); the
reply is JSON unless the backend sends something before its answer (progress,
a server-to-client request), in which case it turns into an SSE stream at that
moment, so nothing waits for the end.  GET opens the session's SSE stream;
DELETE ends the session.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from twisted.internet.defer import DeferredList, FirstError, ensureDeferred
from twisted.logger import Logger

from aigw.auth.authenticator import Authenticator
from aigw.config import Config
from aigw.gateway.client_sessions import ClientSession
from aigw.gateway.errors import GatewayError, InsufficientScope
from aigw.gateway.gateway import Gateway
from aigw.gateway.limits import StreamLimitReached
from aigw.gateway.refused import Refused
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.protocol.sse import format_comment
from aigw.protocol.versions import (
    DEFAULT_HEADER_VERSION,
    SUPPORTED_VERSIONS,
    allows_batches,
    is_modern,
)
from aigw.sealed.session_id import SessionNotFound
from aigw.web.mcp.hop import PeerHop
from aigw.web.mcp.http import (
    Reply,
    accepts,
    begin_event_stream,
    header,
    hold_stream,
    trace_context,
)
from aigw.web.mcp.stateless_era import StatelessHandler, body_version, mismatch, unsupported_version
from aigw.web.request import WebRequest
from aigw.web.respond import (
    HTTPRefusal,
    gateway_refusal,
    refuse,
    refuse_auth,
    stream_limit_refusal,
)

SESSION_HEADER = b"mcp-session-id"
VERSION_HEADER = b"mcp-protocol-version"


class MCPTransport:
    """Streamable HTTP in front of the gateway router."""

    log = Logger()

    def __init__(
        self, config: Config, gateway: Gateway, authenticator: Authenticator, clock: Any
    ) -> None:
        self.config = config
        self.gateway = gateway
        self.authenticator = authenticator
        self.clock = clock
        self.hop = PeerHop(gateway)
        self.stateless = StatelessHandler(gateway, self.hop)
        self.allowed_origins = {o.rstrip("/") for o in config.allowed_origins}
        public = config.public_url.rstrip("/")
        scheme_host = public.split("/", 3)[:3]
        self.allowed_origins.add("/".join(scheme_host))

    async def handle(self, request: WebRequest, principal: Principal) -> bytes | None:
        try:
            self._check_origin(request)
            if request.method == b"POST":
                return await self._post(request, principal)
            if request.method == b"GET":
                return await self._get(request, principal)
            return await self._delete(request, principal)
        except HTTPRefusal as refusal:
            return refuse(request, refusal)
        except Refused as refused:
            self._note(request, refused=refused.key)
            return refuse(request, gateway_refusal(refused))
        except InsufficientScope as error:
            failure = self.authenticator.insufficient_scope(principal, error.needed)
            return refuse_auth(request, failure)

    def _check_origin(self, request: WebRequest) -> None:
        """basic/transports "Security Warning": validate Origin against DNS rebinding."""
        # Every Origin field counts: a request is as foreign as the most foreign one
        # (RFC 6454 section 7.3 allows one; an intermediary may have added another).
        for raw in request.requestHeaders.getRawHeaders(b"origin") or ():
            origin = raw.decode("latin-1").strip()
            if origin.rstrip("/") not in self.allowed_origins:
                raise HTTPRefusal(403, jsonrpc.INVALID_REQUEST, f"origin not allowed: {origin}")

    @staticmethod
    def _header_version(version: str | None) -> str:
        """basic/transports "Protocol Version Header" (``version``, the header's value):
        absent means 2025-03-26."""
        if version is None:
            return DEFAULT_HEADER_VERSION
        if version not in SUPPORTED_VERSIONS:
            # 2026-07-28 streamable-http "Protocol Version Header": -32022 with the list.
            raise unsupported_version(version)
        return version

    def _session(self, request: WebRequest, principal: Principal) -> ClientSession:
        session_id = header(request, SESSION_HEADER)
        if not session_id:
            raise HTTPRefusal(400, jsonrpc.INVALID_REQUEST, "Mcp-Session-Id header is required")
        try:
            return self.gateway.open_session(principal, session_id)
        except SessionNotFound:
            # The client must start a new session (basic/transports "Session Management").
            raise HTTPRefusal(404, jsonrpc.SESSION_NOT_FOUND, "session not found") from None

    def _note(self, request: WebRequest, **fields: Any) -> None:
        target = getattr(request, "aigw_fields", None)
        if target is not None:
            target.update({k: v for k, v in fields.items() if v is not None})

    # -- POST --------------------------------------------------------------

    async def _post(self, request: WebRequest, principal: Principal) -> bytes | None:
        parsed = self._read_body(request)
        messages = parsed.messages
        stated = header(request, VERSION_HEADER)
        opening = (
            not parsed.is_batch
            and isinstance(messages[0], jsonrpc.Request)
            and messages[0].method == "initialize"
        )
        if stated is not None and is_modern(stated) and not opening:
            # basic/versioning "Backward Compatibility": a dual-era server serves a
            # request carrying the modern envelope statelessly.
            return await self.stateless.post(request, principal, stated, parsed)
        header_version = self._header_version(stated)
        self._check_no_envelope(messages, stated)
        if parsed.is_batch:
            if any(isinstance(m, jsonrpc.Request) and m.method == "initialize" for m in messages):
                raise HTTPRefusal(400, jsonrpc.INVALID_REQUEST, "initialize must not be batched")
        elif isinstance(messages[0], jsonrpc.InvalidMessage):
            raise HTTPRefusal(400, messages[0].error.code, messages[0].error.message)
        elif opening:
            assert isinstance(messages[0], jsonrpc.Request)
            return await self._initialize(request, principal, messages[0])
        session = self._session(request, principal)
        session.trace = trace_context(request)
        if parsed.is_batch and not allows_batches(header_version):
            raise HTTPRefusal(
                400, jsonrpc.INVALID_REQUEST, f"JSON-RPC batches are not part of {header_version}"
            )
        answer = messages[0]
        if not parsed.is_batch and isinstance(answer, jsonrpc.Response | jsonrpc.ErrorResponse):
            peer_url = self.gateway.answer_elsewhere(session, answer)
            if peer_url is not None:
                # An answer to a question another process asked (asking.py): sent there.
                return await self.hop.forward(request, None, peer_url)
        reply = Reply(request)
        try:
            if not parsed.is_batch and isinstance(answer, jsonrpc.Request):
                # One request, the common case: straight to the gateway, without the
                # batch's sorting and its two coroutines.
                reply.on_gone = self._cancel_all(session, [answer])
                one = await self._ask(request, session, answer, reply)
                answers = [] if one is None else [one]
            else:
                answers = await self._dispatch(request, session, messages, reply)
        finally:
            reply.release()
        if not answers:
            if not reply.streaming:
                request.setResponseCode(202)
            return b""
        return reply.body(answers, parsed.is_batch)

    @staticmethod
    def _read_body(request: WebRequest) -> jsonrpc.ParsedBody:
        """The POST's JSON-RPC body, once Accept and Content-Type allow it
        (basic/transports "Sending Messages to the Server")."""
        if not accepts(request, "application/json", "text/event-stream"):
            raise HTTPRefusal(
                406,
                jsonrpc.INVALID_REQUEST,
                "Accept must allow both application/json and text/event-stream",
            )
        content_type = (header(request, b"content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise HTTPRefusal(415, jsonrpc.INVALID_REQUEST, "Content-Type must be application/json")
        assert request.content is not None  # set by Twisted before any route runs
        parsed = jsonrpc.parse_body(request.content.read())
        if parsed.error is not None:
            raise HTTPRefusal(400, parsed.error.code, parsed.error.message)
        return parsed

    async def _dispatch(
        self,
        request: WebRequest,
        session: ClientSession,
        messages: Sequence[Any],
        reply: Reply,
    ) -> list[dict[str, Any]]:
        """Notifications and client responses go on in the background; requests are
        answered (the answers, in order, plus those to invalid messages)."""
        requests: list[jsonrpc.Request] = []
        answers: list[dict[str, Any]] = []
        for message in messages:
            if isinstance(message, jsonrpc.Request):
                requests.append(message)
            elif isinstance(message, jsonrpc.Notification):
                self._note(request, mcp_method=message.method)
                self._background(self.gateway.handle_notification(session, message))
            elif isinstance(message, jsonrpc.InvalidMessage):
                answers.append(jsonrpc.to_dict(message))
            else:
                self._background(self.gateway.handle_client_response(session, message))
        if requests:
            answers.extend(await self._answer(request, session, requests, reply))
        return answers

    async def _answer(
        self,
        request: WebRequest,
        session: ClientSession,
        requests: list[jsonrpc.Request],
        reply: Reply,
    ) -> list[dict[str, Any]]:
        """Every request of a batch answered by the gateway, in parallel; a client that
        goes away cancels them all (basic/utilities/cancellation)."""
        reply.on_gone = self._cancel_all(session, requests)
        if len(requests) == 1:  # needs no DeferredList
            answer = await self._ask(request, session, requests[0], reply)
            return [] if answer is None else [answer]
        try:
            results = await DeferredList(
                [
                    ensureDeferred(self.gateway.handle_request(session, r, reply.emit, reply.valve))
                    for r in requests
                ],
                fireOnOneErrback=True,
                consumeErrors=True,
            )
        except FirstError as error:
            # The first failure (InsufficientScope: a 403 for the whole POST).
            error.subFailure.raiseException()
        return [answer for _, answer in results if answer is not None]

    def _ask(
        self, request: WebRequest, session: ClientSession, message: jsonrpc.Request, reply: Reply
    ) -> Coroutine[Any, Any, dict[str, Any] | None]:
        """The gateway's answer to the POST's one request, its method and tool noted for
        the access log: the gateway's coroutine itself, no layer of its own."""
        params = message.params if isinstance(message.params, dict) else {}
        tool = params.get("name") if message.method == "tools/call" else None
        self._note(request, mcp_method=message.method, tool=tool)
        return self.gateway.handle_request(session, message, reply.emit, reply.valve)

    def _cancel_all(
        self, session: ClientSession, requests: list[jsonrpc.Request]
    ) -> Callable[[], None]:
        """What the client going away does (``Reply.on_gone``): each request cancelled."""

        def cancel_all() -> None:
            for pending in requests:
                self._background(self.gateway.cancel(session, pending.id, "client disconnected"))

        return cancel_all

    @staticmethod
    def _check_no_envelope(messages: Sequence[Any], stated: str | None) -> None:
        """A 2026-07-28 body under another (or no) version header is a mismatch, not a
        request for a session (2026-07-28 streamable-http "Server Validation")."""
        for message in messages:
            if isinstance(message, jsonrpc.Request | jsonrpc.Notification):
                in_body = body_version(message.params)
                if in_body is not None and in_body != stated:
                    raise mismatch(
                        getattr(message, "id", None),
                        f"Header mismatch: MCP-Protocol-Version {stated!r} does not match "
                        f"_meta protocolVersion {in_body!r}",
                    )

    async def _initialize(
        self, request: WebRequest, principal: Principal, message: jsonrpc.Request
    ) -> bytes:
        self._note(request, mcp_method="initialize")
        params = message.params if isinstance(message.params, dict) else {}
        try:
            result, session_id = await self.gateway.initialize(
                principal, params, trace_context(request)
            )
        except GatewayError as error:
            answer = jsonrpc.error_response(message.id, error.to_error())
            request.setResponseCode(200)
            request.setHeader(b"Content-Type", b"application/json")
            return jsonrpc.dumps(answer)
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Mcp-Session-Id", session_id.encode("ascii"))
        return jsonrpc.dumps(jsonrpc.result_response(message.id, result))

    def _background(self, work: Any) -> None:
        def logged(failure: Any) -> None:
            self.log.failure("handling a client message", failure)

        ensureDeferred(work).addErrback(logged)

    # -- GET and DELETE ---------------------------------------------------------

    async def _get(self, request: WebRequest, principal: Principal) -> bytes:
        """The session's stream: the backends' GET streams merged (basic/transports)."""
        stated = self._refuse_modern(request)
        if not accepts(request, "text/event-stream"):
            raise HTTPRefusal(406, jsonrpc.INVALID_REQUEST, "Accept must allow text/event-stream")
        self._header_version(stated)
        session = self._session(request, principal)
        # basic/transports "Listening for Messages from the Server" gives the server no
        # other refusal than 405 (no stream at all, and clients would stop asking), so a
        # stream over a bound is refused like the MCP SDK servers refuse a second GET
        # stream of a session (409) or as HTTP asks of an overloaded server: 429 (this
        # user's bound) or 503 (the process's), with Retry-After and a JSON-RPC error.
        # A 409 comes only once the session's held stream was probed and lives.
        try:
            slot = await self.gateway.get_stream_slot(principal.user, session)
        except StreamLimitReached as reached:
            self._note(request, refused=reached.key)
            raise stream_limit_refusal(reached) from None
        try:
            return await self._serve_stream(request, session)
        finally:
            slot.release()

    async def _serve_stream(self, request: WebRequest, session: ClientSession) -> bytes:
        """The stream opens with its priming event and, when aigw ends it (a stop: the
        client did not go), ends with the same kind of event, which tells the client when
        to come back and from where (``SessionStream.mark``)."""
        begin_event_stream(request)
        request.write(format_comment("aigw stream open"))
        stream = self.gateway.session_stream(
            session, request.write, header(request, b"last-event-id")
        )
        request.write(stream.mark())
        gone = await hold_stream(request, stream, self.gateway, self.clock)
        return b"" if gone else stream.mark()

    def _refuse_modern(self, request: WebRequest) -> str | None:
        """2026-07-28 has no GET stream and no sessions: 405 for clients speaking it
        (streamable-http "Backward Compatibility"); they listen with subscriptions/listen.
        Else the version header's value (None: absent)."""
        stated = header(request, VERSION_HEADER)
        if stated is not None and is_modern(stated):
            raise HTTPRefusal(
                405,
                jsonrpc.INVALID_REQUEST,
                f"{request.method.decode()} is not part of MCP {stated}; use POST",
                headers={b"Allow": b"POST"},
            )
        return stated

    async def _delete(self, request: WebRequest, principal: Principal) -> bytes:
        self._refuse_modern(request)
        session = self._session(request, principal)
        await self.gateway.end_session(session)
        request.setResponseCode(204)
        return b""
