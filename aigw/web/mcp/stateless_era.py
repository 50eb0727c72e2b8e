"""MCP 2026-07-28 (stateless) requests at ``mcp_path``, over the same router.

In 2026-07-28 there is no ``initialize`` and no session: every POST is one
self-contained request whose ``_meta`` carries the protocol version, client
info and capabilities (basic/versioning), mirrored in routing headers that
intermediaries may act on (basic/transports/streamable-http, "Request
Metadata").  aigw checks those headers against the body and then decides
everything on the body alone: routing headers are never trusted for
authorization.

Backends that still need a session get one from the gateway's per-user pool
(``pool.py``), so a 2026-07-28 client works over 2025-11-25 servers.
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from aigw.gateway.client_sessions import ClientSession
from aigw.gateway.errors import GatewayError
from aigw.gateway.gateway import Gateway
from aigw.gateway.limits import StreamLimitReached
from aigw.gateway.lists import LISTS
from aigw.gateway.log_levels import checked_level
from aigw.gateway.parking import ParkedElsewhere
from aigw.gateway.refused import Refused
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.protocol.client_capabilities import declared
from aigw.protocol.paramheaders import matches, value_at
from aigw.protocol.refusals import refusal
from aigw.protocol.revision import NAME_PARAMS, SERVER_INFO, decode_header_value
from aigw.protocol.versions import (
    ALL_VERSIONS,
    FEATURE_REQUESTS,
    META_CLIENT_CAPABILITIES,
    META_LOG_LEVEL,
    META_PREFIX,
    META_PROTOCOL_VERSION,
    META_SERVER_INFO,
)
from aigw.web.mcp.hop import PeerHop
from aigw.web.mcp.http import (
    Reply,
    begin_event_stream,
    header,
    hold_stream,
    trace_context,
)
from aigw.web.request import WebRequest
from aigw.web.respond import HTTPRefusal, stream_limit_refusal

METHOD_HEADER = b"mcp-method"
NAME_HEADER = b"mcp-name"

#: Where the methods 2026-07-28 removed went, for the refusal's message.
REPLACED_BY = {
    "resources/subscribe": "subscriptions/listen with resourceSubscriptions",
    "resources/unsubscribe": "closing the subscriptions/listen stream",
    "logging/setLevel": "_meta io.modelcontextprotocol/logLevel on each request",
    "initialize": "the _meta envelope on each request (or server/discover)",
}
#: The client requests of 2026-07-28 (its schema.ts): the feature requests it kept,
#: and its own.  What older revisions had besides (ping, and those ``REPLACED_BY``
#: names) is refused by name rather than passed to a backend.
MODERN_METHODS = frozenset(FEATURE_REQUESTS).difference(REPLACED_BY) | {
    "server/discover",
    "subscriptions/listen",
}

#: server/utilities/caching "Cacheable Results": these carry ``ttlMs``/``cacheScope``.
CACHEABLE = frozenset(LISTS) | {"server/discover", "resources/read"}

#: Lists are filtered per user (scopes, access policy), and backends answer
#: reads for the user's session: aigw's answers are ``private``, and fresh for
#: this long (list_changed notifications invalidate them earlier).
LIST_TTL_MS = 60_000
READ_TTL_MS = 0

#: streamable-http "Value Encoding": the Base64 sentinel.


def mismatch(request_id: Any, message: str) -> HTTPRefusal:
    """streamable-http "Server Validation": 400 with HeaderMismatch (-32020)."""
    return HTTPRefusal(400, jsonrpc.HEADER_MISMATCH, message, request_id=request_id)


def unsupported_version(requested: Any, request_id: Any = None) -> HTTPRefusal:
    """basic/versioning "Protocol Version Negotiation": -32022 naming what aigw speaks,
    so dual-era clients fall back (or forward) cleanly."""
    return HTTPRefusal(
        400,
        jsonrpc.UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        data={"supported": list(ALL_VERSIONS), "requested": requested},
        request_id=request_id,
    )


def body_version(params: Any) -> Any:
    """``_meta["io.modelcontextprotocol/protocolVersion"]`` of a request, if any."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get(META_PROTOCOL_VERSION) if isinstance(meta, dict) else None


def check_headers(request: WebRequest, message: jsonrpc.Request, version: str) -> None:
    """The routing headers must say what the body says (streamable-http "Server Validation")."""
    params = message.params if isinstance(message.params, dict) else {}
    in_body = body_version(params)
    if in_body != version:
        raise mismatch(
            message.id,
            f"Header mismatch: MCP-Protocol-Version {version!r} does not match "
            f"_meta protocolVersion {in_body!r}",
        )
    method = header(request, METHOD_HEADER)
    if method is None:
        raise mismatch(message.id, "Header mismatch: Mcp-Method header is required")
    if method != message.method:
        raise mismatch(
            message.id,
            f"Header mismatch: Mcp-Method {method!r} does not match body method {message.method!r}",
        )
    source = NAME_PARAMS.get(message.method)
    if source is None:
        return
    raw = header(request, NAME_HEADER)
    if raw is None:
        raise mismatch(message.id, f"Header mismatch: Mcp-Name header is required for {method}")
    name = decode_header_value(raw)
    if name is None:
        raise mismatch(message.id, "Header mismatch: Mcp-Name header is malformed")
    if name != params.get(source):
        raise mismatch(
            message.id,
            f"Header mismatch: Mcp-Name {name!r} does not match body {source} "
            f"{params.get(source)!r}",
        )


def strip_envelope(params: dict[str, Any]) -> dict[str, Any]:
    """The request's params without the 2026-07-28 ``_meta`` envelope.

    Session-based backends have the client's identity from aigw's own
    ``initialize``; some (the dual-era ``mcp`` SDK) refuse envelope keys on a
    session.  ``progressToken`` and other ``_meta`` keys are kept.
    """
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return params
    kept = {k: v for k, v in meta.items() if not k.startswith(META_PREFIX)}
    rest = {k: v for k, v in params.items() if k != "_meta"}
    return {**rest, "_meta": kept} if kept else rest


def input_capabilities(params: dict[str, Any]) -> dict[str, Any]:
    """What the client declared it can answer (sampling, elicitation, roots), from its
    ``_meta`` envelope: a backend may ask only for those (basic/patterns/mrtr,
    "Server Requirements" 7)."""
    meta = params.get("_meta")
    return declared(meta.get(META_CLIENT_CAPABILITIES) if isinstance(meta, dict) else None)


def log_level(request_id: Any, params: dict[str, Any]) -> str | None:
    """The request's ``io.modelcontextprotocol/logLevel``, if any; an unknown level is
    refused with -32602 (server/utilities/logging "Error Handling")."""
    meta = params.get("_meta")
    level = meta.get(META_LOG_LEVEL) if isinstance(meta, dict) else None
    if level is None:
        return None
    try:
        return checked_level(level)
    except GatewayError as error:
        raise HTTPRefusal(400, error.code, error.message, request_id=request_id) from None


def complete(method: str, result: dict[str, Any]) -> dict[str, Any]:
    """A result as 2026-07-28 requires it: ``resultType`` (schema "Result"), and the
    caching hints on cacheable ones (server/utilities/caching)."""
    out = {"resultType": "complete", **result}
    if method in CACHEABLE and out["resultType"] == "complete":
        out.setdefault("ttlMs", READ_TTL_MS if method == "resources/read" else LIST_TTL_MS)
        out["cacheScope"] = "private"
    return out


class StatelessHandler:
    """Serves 2026-07-28 POSTs through the gateway router."""

    log = Logger()

    def __init__(self, gateway: Gateway, hop: PeerHop) -> None:
        self.gateway = gateway
        #: Retries whose call is parked in another process go there (``hop.py``).
        self.hop = hop
        # Request ids are the client's own and repeat across clients of a user:
        # aigw uses its own while a request is in flight (cancellation keys on it).
        self._ids = itertools.count(1)

    async def post(
        self,
        request: WebRequest,
        principal: Principal,
        version: str,
        parsed: jsonrpc.ParsedBody,
    ) -> bytes:
        message = self._single(parsed)
        if isinstance(message, jsonrpc.Notification):
            # This revision defines no client-to-server notifications over HTTP
            # (streamable-http "Sending Messages", Note): accepted and ignored.
            request.setResponseCode(202)
            return b""
        check_headers(request, message, version)
        if message.method == "tools/call":
            self._check_param_headers(request, message)
        if message.method not in MODERN_METHODS:
            raise self._not_in_revision(message, version)
        if message.method == "server/discover":
            record = self.gateway.started(message.method, trace_context(request))
            result = await self._discover(principal)
            self.gateway.answered(principal, record, jsonrpc.result_response(message.id, result))
            return self._json(request, message.id, result)
        if message.method == "subscriptions/listen":
            return await self._listen(request, principal, message)
        return await self._forward(request, principal, message)

    def _check_param_headers(self, request: WebRequest, message: jsonrpc.Request) -> None:
        """streamable-http "Server Behavior for Custom Headers": every annotated argument
        present in the body must come with its ``Mcp-Param-{Name}`` header, equal."""
        params = message.params if isinstance(message.params, dict) else {}
        found = self.gateway.param_headers_of(str(params.get("name")))
        for name, path in found.items():
            value = value_at(params.get("arguments"), path)
            if value is None:
                continue  # "Parameter not in arguments": no header expected
            raw = header(request, f"mcp-param-{name}".lower().encode("ascii", "replace"))
            text = decode_header_value(raw) if raw is not None else None
            if text is None or not matches(text, value):
                raise mismatch(
                    message.id,
                    f"Header mismatch: Mcp-Param-{name} is missing, malformed or does not "
                    "match the arguments",
                )

    @staticmethod
    def _not_in_revision(message: jsonrpc.Request, version: str) -> HTTPRefusal:
        """streamable-http "Protocol Version Header": 404 with -32601 for a method the
        revision does not have, saying what replaced it when something did."""
        text = f"{message.method} is not part of MCP {version}"
        if message.method in REPLACED_BY:
            text += f"; use {REPLACED_BY[message.method]}"
        return HTTPRefusal(404, jsonrpc.METHOD_NOT_FOUND, text, request_id=message.id)

    def _single(self, parsed: jsonrpc.ParsedBody) -> jsonrpc.Request | jsonrpc.Notification:
        """streamable-http "Sending Messages" 4: one request or notification, no responses."""
        if parsed.is_batch:
            raise HTTPRefusal(
                400, jsonrpc.INVALID_REQUEST, "JSON-RPC batches are not part of 2026-07-28"
            )
        message = parsed.messages[0]
        if isinstance(message, jsonrpc.InvalidMessage):
            raise HTTPRefusal(400, message.error.code, message.error.message)
        if not isinstance(message, jsonrpc.Request | jsonrpc.Notification):
            raise HTTPRefusal(
                400, jsonrpc.INVALID_REQUEST, "clients do not send JSON-RPC responses in 2026-07-28"
            )
        return message

    async def _discover(self, principal: Principal) -> dict[str, Any]:
        """server/discover: what aigw speaks and offers this user."""
        session = await self.gateway.stateless_session(principal)
        return complete(
            "server/discover",
            {
                "supportedVersions": list(ALL_VERSIONS),
                "capabilities": self.gateway.capabilities(session),
                "_meta": {META_SERVER_INFO: SERVER_INFO},
            },
        )

    async def _forward(
        self, request: WebRequest, principal: Principal, message: jsonrpc.Request
    ) -> bytes:
        reply = Reply(request)
        session = await self.gateway.stateless_session(principal)
        if reply.gone:
            # streamable-http "Cancellation": the client closed the stream while the
            # upstream sessions were opening; the request is cancelled, not forwarded.
            return b""
        params = message.params if isinstance(message.params, dict) else {}
        session.input_capabilities = input_capabilities(params)
        session.log_level = log_level(message.id, params)
        session.trace = trace_context(request)
        internal = jsonrpc.Request(
            f"aigw-{next(self._ids)}", message.method, strip_envelope(params)
        )
        reply.on_gone = lambda: self._cancel(session, internal.id)
        try:
            answer = await self.gateway.handle_request(
                session, internal, lambda m: self._emit(session, reply, m), reply.valve
            )
        except Refused as refused:
            refused.request_id = message.id  # the client's id, not aigw's internal one
            raise
        except ParkedElsewhere as elsewhere:
            return await self.hop.forward(request, message.id, elsewhere.peer_url)
        finally:
            reply.release()
        if answer is None:
            return b""  # the client went away; nothing to send
        answer["id"] = message.id
        if isinstance(answer.get("result"), dict):
            answer["result"] = complete(message.method, answer["result"])
        elif (
            answer.get("error", {}).get("code") == jsonrpc.METHOD_NOT_FOUND and not reply.streaming
        ):
            # streamable-http "Protocol Version Header": 404 with -32601.
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"application/json")
            return jsonrpc.dumps(answer)
        return reply.body([answer], False)

    async def _listen(
        self, request: WebRequest, principal: Principal, message: jsonrpc.Request
    ) -> bytes:
        """basic/patterns/subscriptions: acknowledgment, then the asked-for changes,
        until the client closes the stream or aigw stops (then the graceful result).

        A listen over one of aigw's stream bounds (limits.py) is refused before
        anything is subscribed, as streamable-http answers a request it refuses (a
        4xx/5xx status whose body is the JSON-RPC error response, with the request's
        id): 429 for the user's bound, 503 for the process's, with Retry-After."""
        try:
            slot = await self.gateway.stream_limits.acquire(principal.user)
        except StreamLimitReached as reached:
            raise stream_limit_refusal(reached, message.id) from None
        try:
            return await self._serve_listen(request, principal, message)
        finally:
            slot.release()

    async def _serve_listen(
        self, request: WebRequest, principal: Principal, message: jsonrpc.Request
    ) -> bytes:
        session = await self.gateway.stateless_session(principal)
        session.trace = trace_context(request)
        try:
            notifications = await self.gateway.listen_filter(session, message.params)
        except GatewayError as error:
            request.setResponseCode(200)
            request.setHeader(b"Content-Type", b"application/json")
            return jsonrpc.dumps(jsonrpc.error_response(message.id, error.to_error()))
        begin_event_stream(request)
        stream = self.gateway.listen_stream(
            session,
            request.write,
            message.id,
            notifications,
            lambda m: self._refuse_request(session, m),
        )
        stream.acknowledge()
        gone = await hold_stream(request, stream, self.gateway, self.gateway.clock)
        return b"" if gone else stream.completion()

    def _emit(self, session: ClientSession, reply: Reply, message: dict[str, Any]) -> None:
        """Notifications about the request go to the client; requests from the backend
        (sampling, elicitation, roots) may not (streamable-http "Receiving Messages"),
        so the backend is told so instead of waiting forever."""
        if "id" not in message:
            reply.emit(message)
            return
        self._refuse_request(session, message)

    def _refuse_request(self, session: ClientSession, message: dict[str, Any]) -> None:
        """A backend's request (sampling, elicitation, roots) cannot reach a 2026-07-28
        client (no server-to-client requests in that revision): answer it with an error.
        A ping never comes here: aigw answered it already (``Relay.to_client``)."""
        why = "cannot reach a 2026-07-28 client through aigw"
        answer = refusal(message["id"], message.get("method"), why, "client_revision")
        work = self.gateway.handle_client_response(session, answer)
        ensureDeferred(work).addErrback(lambda f: self.log.failure("refusing {m}", f, m=message))

    def _cancel(self, session: ClientSession, request_id: Any) -> None:
        """streamable-http "Cancellation": closing the stream cancels the request."""
        work = self.gateway.cancel(session, request_id, "client disconnected")
        ensureDeferred(work).addErrback(lambda f: self.log.failure("cancelling", f))

    @staticmethod
    def _json(request: WebRequest, request_id: Any, result: dict[str, Any]) -> bytes:
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/json")
        return jsonrpc.dumps(jsonrpc.result_response(request_id, result))
