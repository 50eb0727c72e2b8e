"""The router: one MCP server facing the client, many MCP clients facing the backends.

aigw is the server the client initializes with (MCP basic/lifecycle).  Each
client session holds one upstream session per backend; their ids travel inside
the sealed ``Mcp-Session-Id`` (see ``session.py``), so any aigw process holding
the key can serve any request.  Lists fan out to every backend and merge in
config order; calls route by the ``<backend>__`` prefix.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, cast

import attrs
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from aigw.config import BackendConfig, Config
from aigw.gateway.access import AccessPolicy
from aigw.gateway.limits import StreamLimits
from aigw.gateway.pool import UpstreamSessionPool
from aigw.gateway.selectors import ToolFilter
from aigw.gateway.streams import Feeds
from aigw.lru import LRU
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.protocol.names import (
    NameTable,
    could_be_mapped,
    expose_uri,
    resolve_uri,
    rewrite_prompt_result,
    rewrite_read_result,
    rewrite_resource_links,
    split_name,
)
from aigw.protocol.paramheaders import Annotations, as_text, header_annotations, value_at
from aigw.protocol.revision import (
    CLIENT_INFO,
    LEGACY,
    MODERN,
    SERVER_INFO,
    choose,
    discover_request,
    encode_header_value,
    envelope,
    legacy_result,
    routing_headers,
)
from aigw.protocol.versions import LATEST_VERSION, is_modern, negotiate
from aigw.sealed.cursor import CursorCodec, InvalidCursor
from aigw.sealed.request_id import InvalidId, RequestIdCodec
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import BackendSession, SessionCodec, SessionState
from aigw.upstream.api import UpstreamError, UpstreamSessionGone
from aigw.upstream.client import Upstream

#: A callable that sends one JSON-RPC message to the client now (progress,
#: server-to-client requests); the transport turns the reply into SSE for it.
Emit = Callable[[dict[str, Any]], None]

#: The list methods, the key of their items, and the capability they need.
LISTS: dict[str, tuple[str, str]] = {
    "tools/list": ("tools", "tools"),
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("resourceTemplates", "resources"),
}

#: Sent once ``initialize`` is answered (basic/lifecycle "Initialization").
INITIALIZED = jsonrpc.dumps(jsonrpc.notification("notifications/initialized"))

REPAIRED_SESSIONS_MAX = 10000
LEARN_AGAIN_SECONDS = 30.0
LEARN_MAX_PAGES = 20
JOIN_RETRY_SECONDS = 30.0


class GatewayError(Exception):
    """A JSON-RPC error to answer the client's request with."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        return jsonrpc.error_object(self.code, self.message, self.data)


class InsufficientScope(Exception):
    """The principal lacks scopes a backend requires: HTTP 403 (MCP Authorization, step-up)."""

    def __init__(self, needed: tuple[str, ...]) -> None:
        super().__init__(needed)
        self.needed = needed


@attrs.define
class ClientSession:
    """One request's view of the client's session: who, which version, which upstream sessions."""

    principal: Principal
    session_id: str
    state: SessionState
    binding: str
    backends: dict[str, BackendSession]
    #: Set for 2026-07-28 clients: where a re-opened upstream session goes (the pool)
    #: instead of the sealed session's repair table.
    on_reopen: Callable[[BackendSession], None] | None = None
    #: Set for 2026-07-28 clients: what the request's ``_meta`` says the client can
    #: answer (sampling, elicitation, roots), passed on to 2026-07-28 backends, which
    #: may then ask for it with ``input_required`` (basic/patterns/mrtr).
    input_capabilities: dict[str, Any] | None = None


class Gateway(Service):
    """Routes MCP messages between one client session and the backends."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: Any,
        sealer: Sealer,
        policy: AccessPolicy,
    ) -> None:
        self.config = config
        self.clock = reactor
        self.policy = policy
        self.backends: dict[str, BackendConfig] = {b.name: b for b in config.backends}
        self.order = [b.name for b in config.backends]
        self.upstreams: dict[str, Upstream] = {
            b.name: Upstream(b, reactor) for b in config.backends
        }
        self.filters = {b.name: ToolFilter(b.tools) for b in config.backends}
        self.sessions = SessionCodec(sealer, reactor.seconds, config.sessions.ttl)
        self.cursors = CursorCodec(sealer)
        self.request_ids = RequestIdCodec(sealer)
        self._ids = itertools.count(1)
        # Client request id -> (backend, upstream id), per session, for cancellation.
        self._inflight: dict[tuple[str, Any], tuple[str, int, _Collector]] = {}
        # When a backend that was down at initialize may be tried again, per session.
        self._join_after: OrderedDict[tuple[str, str], float] = OrderedDict()
        # Upstream sessions re-opened after a backend forgot them or joined late.
        self._repaired: LRU[tuple[str, str], BackendSession] = LRU(REPAIRED_SESSIONS_MAX)
        # Exposed tool and prompt names, mapped ones included, as served in lists.
        self._names = {"tool": NameTable(), "prompt": NameTable()}
        self._streams: set[Any] = set()
        # Bounds on open client streams, and the upstream streams they share (streams.py).
        self.stream_limits = StreamLimits(
            config.server.max_streams, config.sessions.max_streams_per_user
        )
        self.feeds = Feeds(self)
        # x-mcp-header annotations per (backend, tool), from the tool lists.
        self.param_headers: dict[tuple[str, str], Annotations] = {}
        # Which backends' tools and prompts this process has listed, and when it last
        # listed one only to route a call (see _learn_names).
        self._listed: set[tuple[str, str]] = set()
        self._learned: dict[tuple[str, str], float] = {}
        # The revision each backend speaks (revision.py), until it fails.
        self.revisions: dict[str, str] = {}
        # Upstream sessions held for 2026-07-28 clients (they have none of their own).
        self.pool = UpstreamSessionPool(
            reactor,
            self._open_for_pool,
            self._end_upstream,
            max_entries=config.sessions.pool_size,
            idle_seconds=config.sessions.pool_idle_timeout,
        )

    # -- lifecycle ---------------------------------------------------------

    def track_stream(self, stream: Any) -> None:
        self._streams.add(stream)

    def untrack_stream(self, stream: Any) -> None:
        self._streams.discard(stream)

    def close_streams(self) -> None:
        """End every open client stream (shutdown: they would otherwise never finish)."""
        for stream in list(self._streams):
            stream.close()

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return ensureDeferred(self._close_pools())

    async def _close_pools(self) -> None:
        await self.pool.close()
        await DeferredList([ensureDeferred(u.close()) for u in self.upstreams.values()])

    # -- sessions ----------------------------------------------------------

    def open_session(self, principal: Principal, session_id: str) -> ClientSession:
        """Open a sealed session id for this principal (raises SessionNotFound)."""
        state = self.sessions.open(session_id, principal.issuer, principal.subject)
        binding = hashlib.sha256(session_id.encode()).hexdigest()[:32]
        backends = {b.name: b for b in state.backends}
        for name in self.order:
            repaired = self._repaired.get((binding, name))
            if repaired is not None:
                backends[name] = repaired
        return ClientSession(principal, session_id, state, binding, backends)

    async def stateless_session(self, principal: Principal) -> ClientSession:
        """The view of a 2026-07-28 request: this user's pooled upstream sessions.

        The binding (cursors, relayed request ids) is the user's, so a cursor
        from one request is valid in the next request of the same user only.
        """
        backends = await self.pool.sessions(principal.issuer, principal.subject, self.order)
        user = json.dumps(["stateless", principal.issuer, principal.subject])
        binding = hashlib.sha256(user.encode()).hexdigest()[:32]
        state = SessionState(
            issuer=principal.issuer,
            subject=principal.subject,
            created=self.clock.seconds(),
            protocol_version=LATEST_VERSION,
            backends=tuple(backends.values()),
        )

        def reopened(backend_session: BackendSession) -> None:
            key = (principal.issuer, principal.subject, backend_session.name)
            self.pool.put(key, backend_session)

        return ClientSession(principal, "", state, binding, dict(backends), reopened)

    def capabilities(self, session: ClientSession) -> dict[str, Any]:
        """What aigw offers this session (``server/discover``)."""
        return self._union_capabilities(session.backends.values())

    async def _open_for_pool(self, names: list[str]) -> list[BackendSession]:
        """Upstream sessions for a 2026-07-28 client: the newest legacy revision."""
        opened = await self._open_backends(names, LATEST_VERSION, {})
        return [session for session, _ in opened]

    async def _end_upstream(self, backend: BackendSession) -> None:
        if backend.session_id is None:
            return
        try:
            await self.upstreams[backend.name].delete(backend.session_id, backend.protocol_version)
        except UpstreamError as error:
            self.log.info(
                "ending upstream session of {backend}: {error}", backend=backend.name, error=error
            )

    async def initialize(
        self, principal: Principal, params: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        """Answer ``initialize`` and open one upstream session per backend, in parallel.

        A backend that fails is left out and logged; the session fails only
        when every backend fails (then GatewayError).
        """
        version = negotiate(params.get("protocolVersion"))
        client_capabilities = params.get("capabilities")
        if not isinstance(client_capabilities, dict):
            client_capabilities = {}
        opened = await self._open_backends(self.order, version, client_capabilities)
        if not opened:
            raise GatewayError(
                jsonrpc.UPSTREAM_UNAVAILABLE, "no backend is available; try again later"
            )
        state = SessionState(
            issuer=principal.issuer,
            subject=principal.subject,
            created=self.clock.seconds(),
            protocol_version=version,
            backends=tuple(session for session, _ in opened),
        )
        session_id = self.sessions.issue(state)
        result = {
            "protocolVersion": version,
            "capabilities": self._union_capabilities(s for s, _ in opened),
            "serverInfo": SERVER_INFO,
        }
        instructions = [f"## {session.name}\n{text.strip()}" for session, text in opened if text]
        if instructions:
            result["instructions"] = "\n\n".join(instructions)
        return result, session_id

    async def _open_backends(
        self, names: Iterable[str], version: str, client_capabilities: dict[str, Any]
    ) -> list[tuple[BackendSession, str | None]]:
        names = list(names)
        results = await DeferredList(
            [ensureDeferred(self._open_backend(n, version, client_capabilities)) for n in names],
            consumeErrors=True,
        )
        opened = []
        for name, (ok, value) in zip(names, results, strict=True):
            if ok:
                opened.append(value)
            else:
                self.log.warn(
                    "backend {backend} left out of the session: {reason}",
                    backend=name,
                    reason=cast(Failure, value).getErrorMessage(),
                )
        return opened

    async def _open_backend(
        self, name: str, version: str, client_capabilities: dict[str, Any]
    ) -> tuple[BackendSession, str | None]:
        """Open the backend in the revision it speaks, probing it first if unknown.

        A failure forgets the revision: the backend may come back as another one.
        """
        known = self.revisions.get(name)
        try:
            if known == LEGACY:
                return await self._initialize_backend(name, version, client_capabilities)
            if known == MODERN:
                discovered = await self._discover_backend(name)
                if discovered is None:
                    raise UpstreamError(name, "refused", "no longer speaks 2026-07-28")
                return discovered
            return await self._probe(name, version, client_capabilities)
        except UpstreamError:
            self.revisions.pop(name, None)
            raise

    async def _probe(
        self, name: str, version: str, client_capabilities: dict[str, Any]
    ) -> tuple[BackendSession, str | None]:
        """``server/discover``, then ``initialize``: a backend that answers both is
        dual-era and gets sessions (revision.py says why); one that refuses
        ``initialize`` speaks only 2026-07-28."""
        discovered = await self._discover_backend(name)
        if discovered is None:
            opened = await self._initialize_backend(name, version, client_capabilities)
            self.revisions[name] = LEGACY
            return opened
        try:
            opened = await self._initialize_backend(name, version, client_capabilities)
        except UpstreamError as error:
            if error.kind not in ("refused", "http_error", "bad_reply"):
                raise
            self.revisions[name] = MODERN
            return discovered
        self.revisions[name] = LEGACY
        return opened

    async def _discover_backend(self, name: str) -> tuple[BackendSession, str | None] | None:
        """``server/discover`` at 2026-07-28: the backend's side of a session-less
        "session" if it speaks only that, None if it is to be spoken to with sessions.

        An HTTP error or a JSON-RPC error is a legacy server's answer (basic/versioning
        "Backward Compatibility"); an unreachable backend raises (nothing learnt).
        """
        request_id = next(self._ids)
        answer = _Collector(request_id)
        body = jsonrpc.dumps(discover_request(request_id))
        try:
            await self.upstreams[name].post(
                body, answer.sink, None, MODERN, None, routing_headers("server/discover", {})
            )
        except UpstreamError as error:
            if error.kind == "http_error":
                return None
            raise
        result = answer.message.get("result") if answer.message else None
        if choose(result) != MODERN:
            return None
        assert isinstance(result, dict)
        session = BackendSession(
            name, None, MODERN, _routing_capabilities(result.get("capabilities"))
        )
        instructions = result.get("instructions")
        return session, instructions if isinstance(instructions, str) else None

    async def _initialize_backend(
        self, name: str, version: str, client_capabilities: dict[str, Any]
    ) -> tuple[BackendSession, str | None]:
        """``initialize`` then ``notifications/initialized`` with one backend."""
        upstream = self.upstreams[name]
        request_id = next(self._ids)
        params = {
            "protocolVersion": version,
            "capabilities": client_capabilities,
            "clientInfo": CLIENT_INFO,
        }
        body = jsonrpc.dumps(jsonrpc.request(request_id, "initialize", params))
        answer = _Collector(request_id)
        reply = await upstream.post(body, answer.sink, None, version)
        message = answer.result(name)
        if "error" in message:
            raise UpstreamError(name, "refused", str(message["error"].get("message", "")))
        result = message.get("result")
        if not isinstance(result, dict):
            raise UpstreamError(name, "bad_reply", "initialize result is not an object")
        upstream_version = result.get("protocolVersion")
        if not isinstance(upstream_version, str):
            raise UpstreamError(name, "bad_reply", "initialize result has no protocolVersion")
        capabilities = _routing_capabilities(result.get("capabilities"))
        await upstream.post(INITIALIZED, _ignore, reply.session_id, upstream_version)
        instructions = result.get("instructions")
        session = BackendSession(
            name=name,
            session_id=reply.session_id,
            protocol_version=upstream_version,
            capabilities=capabilities,
        )
        return session, instructions if isinstance(instructions, str) else None

    def _union_capabilities(self, sessions: Iterable[BackendSession]) -> dict[str, Any]:
        """What aigw offers is what any backend offers (lists merge, calls route)."""
        union: dict[str, Any] = {}
        for session in sessions:
            for capability in ("tools", "prompts", "resources", "logging", "completions"):
                offered = session.capabilities.get(capability)
                if not isinstance(offered, dict):
                    continue
                merged = union.setdefault(capability, {})
                for flag, value in offered.items():
                    if value is True:
                        merged[flag] = True
        return union

    async def end_session(self, session: ClientSession) -> None:
        """DELETE: end every upstream session of this client session."""
        for name, backend in session.backends.items():
            if backend.session_id is None:
                continue
            try:
                await self.upstreams[name].delete(backend.session_id, backend.protocol_version)
            except UpstreamError as error:
                self.log.info(
                    "ending upstream session of {backend}: {error}", backend=name, error=error
                )
            self._repaired.pop((session.binding, name))

    # -- requests ----------------------------------------------------------

    async def handle_request(
        self, session: ClientSession, request: jsonrpc.Request, emit: Emit
    ) -> dict[str, Any] | None:
        """The response to one client request (None: cancelled, nothing to send)."""
        method = request.method
        params = request.params if isinstance(request.params, dict) else {}
        try:
            if request.params is not None and not isinstance(request.params, dict):
                # MCP's schema: a request's params is an object (JSON-RPC's by-position
                # arrays name nothing MCP knows).
                raise GatewayError(jsonrpc.INVALID_PARAMS, "params must be an object")
            if method == "ping":
                return jsonrpc.result_response(request.id, {})
            if method in LISTS:
                result = await self._list(session, method, params)
                return jsonrpc.result_response(request.id, result)
            if method == "logging/setLevel":
                await self._broadcast_request(session, method, params, "logging")
                return jsonrpc.result_response(request.id, {})
            if method == "initialize":
                raise GatewayError(jsonrpc.INVALID_REQUEST, "session is already initialized")
            if method in ("tools/call", "prompts/get"):
                await self._learn_names(session, method, params.get("name"))
            route = self._route(session, method, params)
            if route is None:
                raise GatewayError(jsonrpc.METHOD_NOT_FOUND, f"method not found: {method}")
            backend, upstream_params, rewrite = route
            return await self._forward(session, backend, request, upstream_params, rewrite, emit)
        except GatewayError as error:
            return jsonrpc.error_response(request.id, error.to_error())

    def route(
        self, session: ClientSession, method: str, params: dict[str, Any]
    ) -> tuple[str, dict[str, Any], Callable[[str, Any], Any]] | None:
        """Which backend a request goes to, authorized on the body (see ``_route``)."""
        return self._route(session, method, params)

    async def ask(
        self, session: ClientSession, backend: str, method: str, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A request of aigw's own to one backend of the session; its answer."""
        return await self._ask(session, backend, method, params)

    def _route(
        self, session: ClientSession, method: str, params: dict[str, Any]
    ) -> tuple[str, dict[str, Any], Callable[[str, Any], Any]] | None:
        """Which backend a request goes to, its upstream params and how to rewrite the result."""
        if method == "tools/call":
            # CallToolRequest: arguments and _meta, when present, are objects.
            for field in ("arguments", "_meta"):
                if field in params and not isinstance(params[field], dict):
                    raise GatewayError(jsonrpc.INVALID_PARAMS, f"{field} must be an object")
            backend, name = self._resolve_name(session, params.get("name"), "tool")
            if not self.filters[backend].allows(name):
                raise GatewayError(jsonrpc.INVALID_PARAMS, f"unknown tool: {params.get('name')}")
            self._authorize(session.principal, backend, name, params.get("name"))
            return backend, {**params, "name": name}, _rewrite_tool_result
        if method == "prompts/get":
            backend, name = self._resolve_name(session, params.get("name"), "prompt")
            self._authorize(session.principal, backend, None, params.get("name"))
            return backend, {**params, "name": name}, rewrite_prompt_result
        if method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
            backend, uri = self._resolve_uri(params.get("uri"))
            self._authorize(session.principal, backend, None, params.get("uri"))
            if method == "resources/subscribe":
                _check_updates_deliverable(session.backends.get(backend))
            return backend, {**params, "uri": uri}, rewrite_read_result
        if method == "completion/complete":
            return self._route_completion(session, params)
        return None

    def _route_completion(
        self, session: ClientSession, params: dict[str, Any]
    ) -> tuple[str, dict[str, Any], Callable[[str, Any], Any]]:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise GatewayError(jsonrpc.INVALID_PARAMS, "completion/complete needs a ref object")
        if ref.get("type") == "ref/prompt":
            backend, name = self._resolve_name(session, ref.get("name"), "prompt")
            new_ref = {**ref, "name": name}
        elif ref.get("type") == "ref/resource":
            backend, uri = self._resolve_uri(ref.get("uri"))
            new_ref = {**ref, "uri": uri}
        else:
            raise GatewayError(jsonrpc.INVALID_PARAMS, "unknown completion ref type")
        self._authorize(session.principal, backend, None, str(ref.get("name") or ref.get("uri")))
        return backend, {**params, "ref": new_ref}, _keep

    async def _learn_names(self, session: ClientSession, method: str, exposed: Any) -> None:
        """List a backend's tools (or prompts) in this process before routing a call to it,
        when what routing needs comes only from a list: a mapped (hashed) name, or the
        ``Mcp-Param`` headers of a 2026-07-28 backend's tools.  Another process of the
        same deployment may have served the list (sealed sessions: any process serves
        any request).  At most once per backend and kind every LEARN_AGAIN_SECONDS, so
        made-up names cannot make aigw list for every call; failures leave routing as
        it was (the call then fails as unknown, or goes without mirrored headers).
        """
        if not isinstance(exposed, str):
            return
        kind = "tool" if method == "tools/call" else "prompt"
        split = split_name(exposed)
        if split is None or split[0] not in session.backends:
            return
        backend = split[0]
        table = self._names[kind]
        unresolved = table.resolve(exposed) is None and could_be_mapped(exposed)
        unlisted = (
            kind == "tool"
            and is_modern(session.backends[backend].protocol_version)
            and (backend, kind) not in self._listed
        )
        if not (unresolved or unlisted):
            return
        now = self.clock.seconds()
        if self._learned.get((backend, kind), -LEARN_AGAIN_SECONDS) + LEARN_AGAIN_SECONDS > now:
            return
        self._learned[(backend, kind)] = now
        list_method = f"{kind}s/list"
        cursor: str | None = None
        try:
            for _ in range(LEARN_MAX_PAGES):
                items, cursor = await self._list_page(session, backend, list_method, cursor)
                for _item in self._expose_named(session.principal, backend, kind + "s", items):
                    pass  # exposing fills the name table and the header annotations
                if cursor is None or (unresolved and table.resolve(exposed) is not None):
                    return
        except UpstreamError as error:
            self.log.info(
                "listing {backend} to route {name!r}: {error}",
                backend=backend,
                name=exposed,
                error=error,
            )

    def _resolve_name(self, session: ClientSession, exposed: Any, kind: str) -> tuple[str, str]:
        if not isinstance(exposed, str):
            raise GatewayError(jsonrpc.INVALID_PARAMS, f"{kind} name must be a string")
        resolved = self._names[kind].resolve(exposed) or split_name(exposed)
        if resolved is None:
            raise GatewayError(jsonrpc.INVALID_PARAMS, f"unknown {kind}: {exposed}")
        backend, name = resolved
        if backend not in self.backends or backend not in session.backends:
            raise GatewayError(jsonrpc.INVALID_PARAMS, f"unknown {kind}: {exposed}")
        return backend, name

    def _resolve_uri(self, exposed: Any) -> tuple[str, str]:
        if not isinstance(exposed, str):
            raise GatewayError(jsonrpc.INVALID_PARAMS, "uri must be a string")
        resolved = resolve_uri(exposed)
        if resolved is None or resolved[0] not in self.backends:
            raise GatewayError(jsonrpc.RESOURCE_NOT_FOUND, "resource not found", {"uri": exposed})
        return resolved

    def _authorize(self, principal: Principal, backend: str, tool: str | None, shown: Any) -> None:
        """Per-backend scopes (403 step-up) and the access policy (hidden as unknown)."""
        needed = self.backends[backend].required_scopes
        if needed and not set(needed) <= principal.scopes:
            raise InsufficientScope(tuple(needed))
        if not self.policy.decide(principal, backend, tool):
            self.log.info(
                "access denied: {sub} may not use {backend} {tool}",
                sub=principal.subject,
                backend=backend,
                tool=tool or "",
            )
            raise GatewayError(jsonrpc.INVALID_PARAMS, f"unknown or not allowed: {shown}")

    def _visible(self, principal: Principal, backend: str) -> bool:
        needed = self.backends[backend].required_scopes
        return not needed or set(needed) <= principal.scopes

    # -- forwarding ----------------------------------------------------------

    async def _forward(
        self,
        session: ClientSession,
        backend: str,
        request: jsonrpc.Request,
        params: dict[str, Any],
        rewrite: Callable[[str, Any], Any],
        emit: Emit,
    ) -> dict[str, Any] | None:
        """Send one request to its backend and relay what comes back, as it comes."""
        upstream_id = next(self._ids)
        key = (session.binding, request.id)
        collector = _Collector(upstream_id, lambda m: self.relay(session, backend, m, emit))
        self._inflight[key] = (backend, upstream_id, collector)
        try:
            message = await self._exchange(
                session, backend, upstream_id, request.method, params, collector
            )
        except UpstreamError as error:
            return jsonrpc.error_response(request.id, self._upstream_error(error))
        finally:
            self._inflight.pop(key, None)
        if message is None:
            return None
        message["id"] = request.id
        result = message.get("result")
        if isinstance(result, dict):
            if result.get("resultType") == "input_required":
                return self._input_required(session, backend, request, message, result)
            message["result"] = rewrite(backend, legacy_result(result))
        return message

    def _input_required(
        self,
        session: ClientSession,
        backend: str,
        request: jsonrpc.Request,
        message: dict[str, Any],
        result: dict[str, Any],
    ) -> dict[str, Any]:
        """2026-07-28 basic/patterns/mrtr: the backend needs client input first.

        A 2026-07-28 client gets the result as it is: the input requests name no
        backend (nothing to rewrite), ``requestState`` is opaque to aigw as to the
        client ("Client Requirements"), and the client's retry carries both back on
        a request routed and authorized like the first.  A session-based client
        cannot be asked this way; aigw does not ask it on the backend's behalf yet,
        and says so.
        """
        requests = result.get("inputRequests")
        state = result.get("requestState")
        if (
            request.method not in INPUT_REQUIRED_METHODS  # "Supported Requests"
            or (requests is None and state is None)  # "Server Requirements" 6
            or (requests is not None and not _valid_input_requests(requests))
            or (state is not None and not isinstance(state, str))
        ):
            return jsonrpc.error_response(
                request.id,
                self._upstream_error(
                    UpstreamError(backend, "bad_reply", "malformed input_required result")
                ),
            )
        if session.input_capabilities is not None:
            message["result"] = result
            return message
        return jsonrpc.error_response(
            request.id,
            jsonrpc.error_object(
                jsonrpc.INVALID_REQUEST,
                f"backend {backend!r} asked for client input (input_required), "
                "which aigw relays to 2026-07-28 clients only",
                {"backend": backend, "reason": "input_required"},
            ),
        )

    async def _exchange(
        self,
        session: ClientSession,
        backend: str,
        upstream_id: int,
        method: str,
        params: dict[str, Any],
        collector: _Collector,
        retry: bool = True,
    ) -> dict[str, Any] | None:
        upstream_session = session.backends.get(backend)
        if upstream_session is None:
            raise UpstreamError(backend, "unavailable", "not part of this session")
        version = upstream_session.protocol_version
        headers = None
        if is_modern(version):
            # 2026-07-28 streamable-http "Request Metadata": envelope and routing headers.
            params = envelope(params, version, session.input_capabilities or {})
            headers = routing_headers(method, params)
            if method == "tools/call":
                headers.update(self._mirrored(backend, params))
        body = jsonrpc.dumps(jsonrpc.request(upstream_id, method, params))
        posting = ensureDeferred(
            self.upstreams[backend].post(
                body,
                collector.sink,
                upstream_session.session_id,
                version,
                collector.attach,
                headers,
            )
        )
        collector.pending = posting
        try:
            await posting
        except CancelledError:
            return None  # cancelled before the backend answered (see cancel)
        except UpstreamSessionGone:
            if not retry:
                raise
            await self._repair(session, backend)
            return await self._exchange(
                session, backend, upstream_id, method, params, collector, False
            )
        except UpstreamError:
            if collector.cancelled:
                return None  # the reader was stopped because the client cancelled
            self.revisions.pop(backend, None)  # re-probed at the next open
            raise
        if collector.cancelled:
            return None
        return collector.result(backend)

    def _mirrored(self, backend: str, params: dict[str, Any]) -> dict[bytes, bytes]:
        """``Mcp-Param-{Name}`` for a call to a 2026-07-28 backend ("Client Behavior")."""
        headers: dict[bytes, bytes] = {}
        found = self.param_headers.get((backend, str(params.get("name"))), {})
        for name, path in found.items():
            text = as_text(value_at(params.get("arguments"), path))
            if text is not None:
                headers[f"Mcp-Param-{name}".encode("ascii", "replace")] = encode_header_value(
                    text
                ).encode("ascii")
        return headers

    async def _ask(
        self, session: ClientSession, backend: str, method: str, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A request of aigw's own (lists, setLevel): only the answer matters."""
        upstream_id = next(self._ids)
        return await self._exchange(
            session, backend, upstream_id, method, params, _Collector(upstream_id)
        )

    async def cancel(self, session: ClientSession, request_id: Any, reason: str) -> None:
        """Cancel a request in flight: tell its backend, stop reading its reply.

        Used for the client's ``notifications/cancelled`` and when the client
        goes away mid-request (basic/utilities/cancellation).
        """
        if isinstance(request_id, bool) or not isinstance(request_id, str | int):
            return  # a RequestId is a string or an integer: anything else names nothing
        target = self._inflight.get((session.binding, request_id))
        if target is None:
            return  # unknown or finished: nothing to cancel
        backend, upstream_id, collector = target
        collector.cancelled = True
        await self._notify(
            session,
            backend,
            "notifications/cancelled",
            {"requestId": upstream_id, "reason": reason},
        )
        if collector.reader is not None:
            collector.reader.stop()
        elif collector.pending is not None and not collector.pending.called:
            # No answer has begun: abort the request itself, the only signal a
            # 2026-07-28 backend gets (streamable-http "Cancellation").
            collector.pending.cancel()

    async def _join_missing(self, session: ClientSession) -> None:
        """Backends that were down when the session opened join it once they answer.

        Tried at most every JOIN_RETRY_SECONDS per session and backend, on the
        first page of a list, so a backend that comes back shows up again.
        """
        now = self.clock.seconds()
        missing = [
            name
            for name in self.order
            if name not in session.backends
            and self._join_after.get((session.binding, name), 0.0) <= now
        ]
        if not missing:
            return
        for name in missing:
            self._join_after[(session.binding, name)] = now + JOIN_RETRY_SECONDS
        while len(self._join_after) > REPAIRED_SESSIONS_MAX:
            self._join_after.popitem(last=False)
        opened = await self._open_backends(missing, session.state.protocol_version, {})
        for joined, _ in opened:
            self._remember(session, joined)

    def _remember(self, session: ClientSession, backend_session: BackendSession) -> None:
        """An upstream session opened after the client's session was sealed (bounded)."""
        session.backends[backend_session.name] = backend_session
        if session.on_reopen is not None:
            session.on_reopen(backend_session)
            return
        self._repaired.put((session.binding, backend_session.name), backend_session)

    async def _repair(self, session: ClientSession, backend: str) -> None:
        """The backend forgot our session (restart): open a new one, transparently."""
        self.log.info("backend {backend} forgot the session; re-initializing", backend=backend)
        opened = await self._open_backends([backend], session.state.protocol_version, {})
        if not opened:
            raise UpstreamError(backend, "unavailable", "could not re-open the upstream session")
        self._remember(session, opened[0][0])

    def relay(self, session: ClientSession, backend: str, message: Any, emit: Emit) -> None:
        """A message from the backend that is not our answer: pass it on, rewritten."""
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            self.log.debug("backend {backend} sent a stray message", backend=backend)
            return
        if "id" in message:
            # A server-to-client request: the id is sealed so the answer finds its way back
            # and a client cannot forge routing to another backend.
            message = {
                **message,
                "id": self.request_ids.wrap(backend, message["id"], session.binding),
            }
        emit(_rewrite_notification(backend, message))

    def _upstream_error(self, error: UpstreamError) -> dict[str, Any]:
        code = jsonrpc.UPSTREAM_TIMEOUT if error.kind == "timeout" else jsonrpc.UPSTREAM_UNAVAILABLE
        self.log.warn("{error}", error=str(error))
        return jsonrpc.error_object(
            code,
            f"backend {error.backend!r} failed: {error.kind}",
            {"backend": error.backend, "reason": error.kind, "detail": error.detail},
        )

    async def _broadcast_request(
        self, session: ClientSession, method: str, params: dict[str, Any], capability: str
    ) -> None:
        names = [
            n
            for n, s in session.backends.items()
            if isinstance(s.capabilities.get(capability), dict)
        ]
        await DeferredList(
            [ensureDeferred(self._ask(session, n, method, params)) for n in names],
            consumeErrors=True,
        )

    # -- lists -------------------------------------------------------------

    async def _list(
        self, session: ClientSession, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Fan out to every backend that has the capability; merge in config order.

        aigw's cursor carries each backend's own cursor, so a backend whose
        list spans several pages is listed completely (MCP utilities/pagination).
        """
        key, capability = LISTS[method]
        cursor = params.get("cursor")
        if cursor is None:
            await self._join_missing(session)
            pending: dict[str, str | None] = {
                name: None
                for name in self.order
                if name in session.backends
                and isinstance(session.backends[name].capabilities.get(capability), dict)
                and self._visible(session.principal, name)
            }
        else:
            try:
                pending = self.cursors.decode(cursor, session.binding, method)
            except InvalidCursor:
                raise GatewayError(jsonrpc.INVALID_PARAMS, "invalid cursor") from None
        names = [n for n in self.order if n in pending]
        pages = await DeferredList(
            [ensureDeferred(self._list_page(session, n, method, pending[n])) for n in names],
            consumeErrors=True,
        )
        items: list[Any] = []
        following: dict[str, str | None] = {}
        for name, (ok, page) in zip(names, pages, strict=True):
            if not ok:
                self.log.warn(
                    "backend {backend} left out of {method}: {reason}",
                    backend=name,
                    method=method,
                    reason=cast(Failure, page).getErrorMessage(),
                )
                continue
            page_items, next_cursor = page
            items.extend(self._expose_items(session, name, key, page_items))
            if next_cursor is not None:
                following[name] = next_cursor
        result: dict[str, Any] = {key: items}
        if following:
            result["nextCursor"] = self.cursors.encode(following, session.binding, method)
        return result

    async def _list_page(
        self, session: ClientSession, backend: str, method: str, cursor: str | None
    ) -> tuple[list[Any], str | None]:
        params: dict[str, Any] = {} if cursor is None else {"cursor": cursor}
        message = await self._ask(session, backend, method, params)
        if message is None or "error" in message:
            detail = message["error"] if message else "cancelled"
            raise UpstreamError(backend, "refused", json.dumps(detail)[:200])
        result = message.get("result")
        key = LISTS[method][0]
        if not isinstance(result, dict) or not isinstance(result.get(key), list):
            raise UpstreamError(backend, "bad_reply", f"{method} result has no {key} list")
        next_cursor = result.get("nextCursor")
        return result[key], next_cursor if isinstance(next_cursor, str) and next_cursor else None

    def _expose_items(
        self, session: ClientSession, backend: str, key: str, items: list[Any]
    ) -> Iterable[Any]:
        principal = session.principal
        if key in ("tools", "prompts"):
            yield from self._expose_named(principal, backend, key, items)
            return
        for item in items:
            if not isinstance(item, dict):
                continue
            if not self.policy.decide(principal, backend, None):
                continue
            elif key == "resources" and isinstance(item.get("uri"), str):
                yield {**item, "uri": expose_uri(backend, item["uri"])}
            elif key == "resourceTemplates" and isinstance(item.get("uriTemplate"), str):
                yield {**item, "uriTemplate": expose_uri(backend, item["uriTemplate"])}

    def _expose_named(
        self, principal: Principal, backend: str, key: str, items: list[Any]
    ) -> Iterable[Any]:
        """Tools and prompts as ``<backend>__<name>``, filtered by selector and policy."""
        kind = key[:-1]
        table = self._names[kind]
        self._listed.add((backend, kind))
        kept = [
            item
            for item in items
            if isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and (
                self.filters[backend].allows(item["name"])
                and self.policy.decide(principal, backend, item["name"])
                if kind == "tool"
                else self.policy.decide(principal, backend, None)
            )
        ]
        for name in table.add(backend, [item["name"] for item in kept]):
            self.log.warn(
                "backend {backend}: {kind} {name!r} cannot be exposed; left out",
                backend=backend,
                kind=kind,
                name=name,
            )
        for item in kept:
            exposed = table.expose(backend, item["name"])
            if exposed is not None:
                if kind == "tool":
                    self._remember_param_headers(backend, item)
                yield {**item, "name": exposed}

    def _remember_param_headers(self, backend: str, tool: dict[str, Any]) -> None:
        """A tool's ``x-mcp-header`` annotations (paramheaders.py), as last listed."""
        found = header_annotations(tool.get("inputSchema"))
        if found:
            self.param_headers[(backend, tool["name"])] = found
        else:
            self.param_headers.pop((backend, tool["name"]), None)

    def param_headers_of(self, exposed: str) -> Annotations:
        """The annotations of an exposed tool name (empty when none or unknown)."""
        resolved = self._names["tool"].resolve(exposed) or split_name(exposed)
        return self.param_headers.get(resolved, {}) if resolved else {}

    # -- notifications and client responses ----------------------------------

    async def handle_notification(
        self, session: ClientSession, message: jsonrpc.Notification
    ) -> None:
        params = message.params if isinstance(message.params, dict) else {}
        if message.method == "notifications/initialized":
            return  # aigw initialized every backend itself when the session opened
        if message.method == "notifications/cancelled":
            reason = params.get("reason")
            await self.cancel(
                session, params.get("requestId"), reason if isinstance(reason, str) else ""
            )
            return
        if message.method == "notifications/roots/list_changed":
            await DeferredList(
                [
                    ensureDeferred(self._notify(session, n, message.method, params))
                    for n in session.backends
                ],
                consumeErrors=True,
            )
            return
        self.log.debug("notification {method} not routed", method=message.method)

    async def handle_client_response(self, session: ClientSession, message: Any) -> None:
        """The client's answer to a relayed server-to-client request goes back to its backend."""
        try:
            backend, upstream_id = self.request_ids.unwrap(message.id, session.binding)
        except InvalidId:
            self.log.info("client answered an unknown or forged request id; dropped")
            return
        upstream_session = session.backends.get(backend)
        if upstream_session is None:
            return
        payload = jsonrpc.to_dict(message)
        payload["id"] = upstream_id
        try:
            await self.upstreams[backend].post(
                jsonrpc.dumps(payload),
                _ignore,
                upstream_session.session_id,
                upstream_session.protocol_version,
            )
        except UpstreamError as error:
            self.log.warn("relaying a client response: {error}", error=str(error))

    async def _notify(
        self, session: ClientSession, backend: str, method: str, params: dict[str, Any]
    ) -> None:
        upstream_session = session.backends.get(backend)
        if upstream_session is None or is_modern(upstream_session.protocol_version):
            # 2026-07-28 has no client notifications over HTTP; closing the
            # request's stream is its cancellation (streamable-http "Cancellation").
            return
        body = jsonrpc.dumps(jsonrpc.notification(method, params))
        try:
            await self.upstreams[backend].post(
                body, _ignore, upstream_session.session_id, upstream_session.protocol_version
            )
        except UpstreamError as error:
            self.log.info(
                "notification {method} to {backend}: {error}",
                method=method,
                backend=backend,
                error=str(error),
            )


class _Collector:
    """Waits for the answer with ``request_id``; hands everything else to ``other``."""

    def __init__(self, request_id: int, other: Callable[[Any], None] | None = None) -> None:
        self.request_id = request_id
        self.other = other
        self.message: dict[str, Any] | None = None
        self.reader: Any = None
        self.pending: Deferred[Any] | None = None
        self.cancelled = False

    def attach(self, reader: Any) -> None:
        self.reader = reader

    def sink(self, message: Any) -> None:
        if isinstance(message, list):
            for item in message:
                self.sink(item)
            return
        if (
            isinstance(message, dict)
            and type(message.get("id")) is int  # not True, not 1.0: ids aigw sent are ints
            and message["id"] == self.request_id
            and ("result" in message or "error" in message)
        ):
            self.message = message
            if self.reader is not None:
                self.reader.finish()
            return
        if self.other is not None:
            self.other(message)

    def result(self, backend: str) -> dict[str, Any]:
        if self.message is None:
            raise UpstreamError(backend, "bad_reply", "the reply ended without an answer")
        return self.message


ROUTED_CAPABILITIES = ("tools", "prompts", "resources", "logging", "completions")


#: 2026-07-28 basic/patterns/mrtr "Supported Requests".
INPUT_REQUIRED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
#: What an input request may be ("Server Requirements" 2).
INPUT_REQUEST_METHODS = frozenset({"elicitation/create", "sampling/createMessage", "roots/list"})


def _valid_input_requests(requests: Any) -> bool:
    """An InputRequests map: string keys, each value a request aigw lets through."""
    return isinstance(requests, dict) and all(
        isinstance(key, str)
        and isinstance(value, dict)
        and value.get("method") in INPUT_REQUEST_METHODS
        and isinstance(value.get("params", {}), dict)
        for key, value in requests.items()
    )


def _check_updates_deliverable(backend: BackendSession | None) -> None:
    """Refuse a subscription whose updates could never arrive.

    2025-11-25 server/resources "Subscriptions" sends ``notifications/resources/updated``
    later, outside any request, so on the GET stream (basic/transports "Listening for
    Messages from the Server"), which belongs to the session.  A backend that answered
    ``initialize`` without ``Mcp-Session-Id`` (a stateless server) has neither: it would
    accept the subscription and never deliver, so aigw says so instead.
    """
    if backend is None or backend.session_id is not None or is_modern(backend.protocol_version):
        return
    raise GatewayError(
        jsonrpc.INVALID_REQUEST,
        f"resources/subscribe: backend {backend.name!r} keeps no session, so it has "
        "no stream to send resource updates on",
        {"backend": backend.name, "reason": "no_session_stream"},
    )


def _routing_capabilities(offered: Any) -> dict[str, Any]:
    """Only what routing needs travels in the sealed session id: which capabilities
    a backend has and their boolean flags (an upstream's ``experimental`` blobs
    would only make every session id longer)."""
    if not isinstance(offered, dict):
        return {}
    return {
        name: {flag: True for flag, value in offered[name].items() if value is True}
        for name in ROUTED_CAPABILITIES
        if isinstance(offered.get(name), dict)
    }


def _ignore(message: Any) -> None:
    """Sink for replies whose content does not matter (notifications, DELETE)."""


def _keep(backend: str, result: Any) -> Any:
    return result


def _rewrite_tool_result(backend: str, result: Any) -> Any:
    """Resource links inside tool results point at the exposed URIs."""
    if isinstance(result, dict):
        return rewrite_resource_links(backend, result)
    return result


def _rewrite_notification(backend: str, message: dict[str, Any]) -> dict[str, Any]:
    """Notifications that name a resource name it as the client knows it."""
    params = message.get("params")
    if (
        message.get("method") == "notifications/resources/updated"
        and isinstance(params, dict)
        and isinstance(params.get("uri"), str)
    ):
        return {**message, "params": {**params, "uri": expose_uri(backend, params["uri"])}}
    return message
