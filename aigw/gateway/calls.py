"""Calls: route a request to its backend, authorize it on the body, forward it, cancel it.

Calls route by the ``<backend>__`` prefix (tools, prompts), the ``aigw:<backend>/``
URI prefix (resources) or the completion's ref.  The body alone decides, and
every named backend and tool is authorized twice: the backend's required scopes
(a 403 step-up) and the access policy (hidden as unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from aigw.audit import AUDITED_METHODS
from aigw.events import AccessDecided, GatewayObserver, heard
from aigw.gateway.access import AccessPolicy, Kind
from aigw.gateway.asking import Asking
from aigw.gateway.backends import BackendSessions
from aigw.gateway.catalog import Catalog
from aigw.gateway.client_sessions import ClientSession
from aigw.gateway.elicitations import Asked, ElicitationSessions
from aigw.gateway.errors import GatewayError, InsufficientScope
from aigw.gateway.exchange import Collector, Exchange
from aigw.gateway.flow import Valve
from aigw.gateway.input_required import (
    INPUT_REQUIRED_METHODS,
    check_input_required,
    is_input_required,
)
from aigw.gateway.parking import Hold, Parking
from aigw.gateway.ratelimit import Limiter
from aigw.gateway.record import RequestRecord
from aigw.gateway.refused import AuditGate, check_audit
from aigw.gateway.relay import Emit, Relay
from aigw.gateway.resource_subscriptions import SUBSCRIPTION_METHODS, ResourceSubscriptions
from aigw.protocol import jsonrpc
from aigw.protocol.names import (
    resolve_uri,
    rewrite_prompt_result,
    rewrite_read_result,
    rewrite_resource_links,
    split_name,
)
from aigw.protocol.revision import legacy_result
from aigw.protocol.versions import is_modern
from aigw.sealed.session_id import BackendSession
from aigw.upstream.api import AuthorizationRequired, UpstreamError

#: How a backend's result is rewritten for the client (backend, result) -> result.
Rewrite = Callable[[str, Any], Any]
#: Where a request goes: backend, the params as the backend knows them, the rewrite.
Route = tuple[str, dict[str, Any], Rewrite]

#: The methods that name what they are for, routed to one backend.
ROUTED_METHODS = (
    "tools/call",
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
)
#: Those whose name may have to be learnt by listing first, or whose pin read again
#: (``Catalog.before_call``).
LEARNED_METHODS = ("tools/call", "prompts/get")


class Calls:
    """Routes, authorizes, forwards and cancels requests for one named backend item."""

    log = Logger()

    def __init__(
        self,
        policy: AccessPolicy,
        observer: GatewayObserver,
        catalog: Catalog,
        exchange: Exchange,
        relay: Relay,
        asking: Asking,
        parking: Parking,
        clock: Any,
        subscriptions: ResourceSubscriptions,
        backends: BackendSessions,
        record_arguments: bool = False,
    ) -> None:
        self.policy = policy
        self.backends = backends
        self.record_arguments = record_arguments
        self.observer = observer
        self.catalog = catalog
        self.exchange = exchange
        self.relay = relay
        self.asking = asking
        self.parking = parking
        self.clock = clock
        self.subscriptions = subscriptions
        # Client request id -> (backend, what the call waits on), per session, for cancellation.
        self._inflight: dict[tuple[str, Any], tuple[str, Collector]] = {}
        #: The ``per: backend`` and ``per: tool`` limits, set by the gateway.
        self.limiter: Limiter | None = None
        #: ``audit.on_write_error: refuse``: why the audit file cannot be written, set by
        #: the gateway (None: never refuse for it).
        self.audit_gate: AuditGate | None = None
        #: Which session got each URL elicitation (``elicitations.py``).
        self.elicitations = ElicitationSessions(clock)

    def upstream_error(self, session: ClientSession, error: UpstreamError) -> GatewayError:
        """A backend's failure as this client sees it; a URL elicitation it is answered
        is remembered for its completion notice (session clients only: ``elicitations.py``)."""
        answer = GatewayError.from_upstream(error, session.url_elicitation)
        if (
            isinstance(error, AuthorizationRequired)
            and answer.code == jsonrpc.URL_ELICITATION_REQUIRED
            and not session.sessionless
        ):
            principal = session.principal
            asked = Asked(session.session_id, principal.issuer, principal.subject, error.expires_at)
            self.elicitations.asked(error.elicitation_id, asked)
        return answer

    async def answer(
        self,
        session: ClientSession,
        request: jsonrpc.Request,
        params: dict[str, Any],
        emit: Emit,
        record: RequestRecord,
    ) -> dict[str, Any] | None:
        """The response to a routed request (None: cancelled, nothing to send)."""
        await self._join_missing(session, request.method, params)
        if request.method in LEARNED_METHODS:
            await self.catalog.before_call(session, request.method, params.get("name"))
        route = self.route(session, request.method, params, record)
        if route is None:
            raise GatewayError(jsonrpc.METHOD_NOT_FOUND, f"method not found: {request.method}")
        if self.audit_gate is not None and request.method in AUDITED_METHODS:
            # Fail closed: the decision just made may be the write that found the file
            # failing; such a call never reaches its backend unaudited.
            check_audit(self.audit_gate)
        backend, upstream_params, _ = route
        upstream = session.backends.get(backend)
        if (
            request.method in SUBSCRIPTION_METHODS
            and upstream is not None
            and is_modern(upstream.protocol_version)
        ):
            # A 2026-07-28 backend has no resources/subscribe: its listen carries them.
            result = self.subscriptions.answer(
                session.binding,
                backend,
                request.method,
                upstream_params["uri"],
                upstream.capabilities,
            )
            return jsonrpc.result_response(request.id, result)
        if self.limiter is None:
            return await self.forward(session, route, request, emit, record)
        # per: tool globs match the canonical exposed name, whatever alias the client used.
        tool = f"{backend}__{upstream_params['name']}" if request.method == "tools/call" else None
        permit = await self.limiter.route(session.principal, backend, tool)
        try:
            return await self.forward(session, route, request, emit, record)
        finally:
            permit.release()

    async def _join_missing(
        self, session: ClientSession, method: str, params: dict[str, Any]
    ) -> None:
        """A configured backend missing from the session is opened now, its failure the
        call's answer: a ``user_oauth`` backend whose user had not authorized aigw there
        (the URL-elicitation-required error, MCP 2025-11-25 client/elicitation; once
        authorized the retried call goes through), or one that was down or refused aigw's
        credentials when the session opened (-32010, -32015 naming the backend, rather
        than an unknown tool)."""
        if method in LEARNED_METHODS:
            exposed = params.get("name")
            split = split_name(exposed) if isinstance(exposed, str) else None
        else:
            uri = params.get("uri")
            split = resolve_uri(uri) if isinstance(uri, str) else None
        if split is None or split[0] in session.backends:
            return
        if split[0] not in session.snapshot.backends:
            return
        try:
            await self.backends.join(session, split[0])
        except UpstreamError as error:
            raise self.upstream_error(session, error) from None

    def route(
        self,
        session: ClientSession,
        method: str,
        params: dict[str, Any],
        record: RequestRecord | None = None,
    ) -> Route | None:
        """Which backend a request goes to, its upstream params and how to rewrite the result."""
        catalog = self.catalog
        if method == "tools/call":
            # CallToolRequest: arguments and _meta, when present, are objects.
            for field in ("arguments", "_meta"):
                if field in params and not isinstance(params[field], dict):
                    raise GatewayError(jsonrpc.INVALID_PARAMS, f"{field} must be an object")
            backend, name = catalog.resolve_name(session, params.get("name"), "tool")
            if not session.snapshot.filters[backend].allows(name):
                raise GatewayError(jsonrpc.INVALID_PARAMS, f"unknown tool: {params.get('name')}")
            self._record_arguments(params, record)
            self._authorize(session, method, backend, "tool", name, params.get("name"), record)
            return backend, {**params, "name": name}, _rewrite_tool_result
        if method == "prompts/get":
            backend, name = catalog.resolve_name(session, params.get("name"), "prompt")
            self._record_arguments(params, record)
            self._authorize(session, method, backend, "prompt", name, params.get("name"), record)
            return backend, {**params, "name": name}, rewrite_prompt_result
        if method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
            backend, uri = catalog.resolve_uri(session, params.get("uri"))
            self._authorize(session, method, backend, "resource", uri, params.get("uri"), record)
            if method == "resources/subscribe":
                _check_updates_deliverable(session.backends.get(backend))
            return backend, {**params, "uri": uri}, rewrite_read_result
        if method == "completion/complete":
            return self._route_completion(session, params, record)
        return None

    def _route_completion(
        self, session: ClientSession, params: dict[str, Any], record: RequestRecord | None
    ) -> Route:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise GatewayError(jsonrpc.INVALID_PARAMS, "completion/complete needs a ref object")
        if ref.get("type") == "ref/prompt":
            backend, name = self.catalog.resolve_name(session, ref.get("name"), "prompt")
            new_ref = {**ref, "name": name}
            kind: Kind = "prompt"
        elif ref.get("type") == "ref/resource":
            backend, name = self.catalog.resolve_uri(session, ref.get("uri"))
            new_ref = {**ref, "uri": name}
            kind = "resource"
        else:
            raise GatewayError(jsonrpc.INVALID_PARAMS, "unknown completion ref type")
        shown = str(ref.get("name") or ref.get("uri"))
        self._authorize(session, "completion/complete", backend, kind, name, shown, record)
        return backend, {**params, "ref": new_ref}, _keep

    def _authorize(
        self,
        session: ClientSession,
        method: str,
        backend: str,
        kind: Kind,
        name: str,
        shown: Any,
        record: RequestRecord | None,
    ) -> None:
        """Per-backend scopes (403 step-up) and the access policy (hidden as unknown);
        each decision is reported with the rule that made it, and the request it is for."""
        principal = session.principal
        snapshot = session.snapshot
        exposed = shown if isinstance(shown, str) else None
        request_id = 0
        if record is not None:
            record.backend = backend
            record.name = name
            record.exposed = exposed
            request_id = record.request_id

        def report(allowed: bool, rule: str) -> None:
            if not heard(self.observer):
                return
            self.observer.access_decided(
                AccessDecided(
                    principal,
                    backend,
                    name,
                    allowed,
                    rule,
                    method=method,
                    request_id=request_id,
                    exposed=exposed,
                )
            )

        held = None if kind == "resource" else self.catalog.held(session, backend, kind, name)
        if held is not None:
            rule = f"backends[{snapshot.indexes[backend]}].{held}"
            report(False, rule)
            if record is not None:
                record.outcome = "denied"
            if held == "pin_tools":
                # Its definition changed since it was pinned: say so, the user saw it before.
                raise GatewayError(
                    jsonrpc.INVALID_PARAMS,
                    f"{kind} {shown} is held: its definition changed since aigw pinned it "
                    f"({rule}: block), and an operator has not accepted the change",
                    {"name": shown, "reason": "pin_changed"},
                )
            # Screening blocked it, or never saw it listed clean: unknown, as when hidden.
            raise GatewayError(jsonrpc.INVALID_PARAMS, f"unknown {kind}: {shown}")
        needed = snapshot.unmet_scopes(principal, backend)
        if needed:
            report(False, snapshot.scopes_rule(backend))
            if record is not None:
                record.outcome = "denied"
            raise InsufficientScope(needed)
        decision = self.policy.decide(principal, backend, name, kind=kind, method=method)
        report(decision.allowed, decision.rule)
        if not decision.allowed:
            self.log.info(
                "access denied: {sub} may not {method} {backend} {name}",
                sub=principal.subject,
                method=method,
                backend=backend,
                name=name,
            )
            if record is not None:
                record.outcome = "denied"
            raise GatewayError(jsonrpc.INVALID_PARAMS, f"unknown or not allowed: {shown}")

    def _record_arguments(self, params: dict[str, Any], record: RequestRecord | None) -> None:
        """Keep the arguments for the request's event, only when the gateway was built to."""
        if self.record_arguments and record is not None:
            record.arguments = params.get("arguments")

    async def forward(
        self,
        session: ClientSession,
        route: Route,
        request: jsonrpc.Request,
        emit: Emit,
        record: RequestRecord,
    ) -> dict[str, Any] | None:
        """Send one request to its backend and relay what comes back, as it comes."""
        backend, params, rewrite = route
        key = (session.binding, request.id)
        started = self.clock.seconds()
        try:
            if self._parks(session, backend, request.method):
                message = await self.parking.call(
                    session, backend, request.method, params, emit, self._hold(key, backend)
                )
            else:
                message = await self._send(
                    session, backend, request.method, params, emit, key, record.valve
                )
            result = None if message is None else message.get("result")
            asks = isinstance(result, dict) and is_input_required(result)
            if asks and message is not None and not session.modern:

                async def send(upstream_params: dict[str, Any]) -> dict[str, Any] | None:
                    return await self._send(
                        session, backend, request.method, upstream_params, emit, key, record.valve
                    )

                # A session client cannot read input_required: aigw asks it (asking.py).
                message = await self.asking.resolve(
                    session, backend, params, message, emit, send, self._waiting(key, backend)
                )
                result = None if message is None else message.get("result")
                asks = isinstance(result, dict) and is_input_required(result)
            if message is None:
                return None
            message["id"] = request.id
            if isinstance(result, dict) and not asks:
                message["result"] = rewrite(backend, legacy_result(result))
            return message
        except UpstreamError as error:
            self.log.warn("{error}", error=str(error))
            record.outcome = "upstream_error"
            answer = self.upstream_error(session, error)
            return jsonrpc.error_response(request.id, answer.to_error())
        finally:
            record.upstream_seconds += self.clock.seconds() - started
            self._inflight.pop(key, None)

    async def _send(
        self,
        session: ClientSession,
        backend: str,
        method: str,
        params: dict[str, Any],
        emit: Emit,
        key: tuple[str, Any],
        valve: Valve | None = None,
    ) -> dict[str, Any] | None:
        """One request upstream, cancellable under the client's id ``key``; ``valve``
        pauses its reply while the client reading it is behind (``flow.py``)."""
        upstream_id = self.exchange.next_id()
        collector = Collector(
            upstream_id, lambda m: self.relay.to_client(session, backend, m, emit), valve
        )
        self._inflight[key] = (backend, collector)
        message = await self.exchange.request(
            session, backend, upstream_id, method, params, collector
        )
        if message is not None and _asks(message):
            check_input_required(backend, method, message["result"])
        return message

    @staticmethod
    def _parks(session: ClientSession, backend: str, method: str) -> bool:
        """A 2026-07-28 client's call that a session backend may ask questions during
        (``parking.py``): only those that may answer ``input_required`` (mrtr)."""
        upstream = session.backends.get(backend)
        return (
            session.modern
            and method in INPUT_REQUIRED_METHODS
            and upstream is not None
            and not is_modern(upstream.protocol_version)
        )

    def _hold(self, key: tuple[str, Any], backend: str) -> Hold:
        def hold(collector: Collector) -> None:
            self._inflight[key] = (backend, collector)

        return hold

    def _waiting(self, key: tuple[str, Any], backend: str) -> Callable[[Deferred[Any]], None]:
        """Cancelling the call while it waits for the client's answers cancels the wait."""

        def waiting(answers: Deferred[Any]) -> None:
            holder = Collector(0)
            holder.pending = answers
            self._inflight[key] = (backend, holder)

        return waiting

    async def cancel(self, session: ClientSession, request_id: Any, reason: str) -> None:
        """Cancel a request in flight: tell its backend, stop reading its reply.

        Used for the client's ``notifications/cancelled`` and when the client
        goes away mid-request (basic/utilities/cancellation).
        """
        if not jsonrpc.is_request_id(request_id):
            return  # a RequestId is a string or an integer: anything else names nothing
        target = self._inflight.get((session.binding, request_id))
        if target is None:
            return  # unknown or finished: nothing to cancel
        backend, collector = target
        await self.exchange.cancel(session, backend, collector, reason)


def _asks(message: dict[str, Any]) -> bool:
    """Is this answer an ``input_required`` result (basic/patterns/mrtr)?"""
    result = message.get("result")
    return isinstance(result, dict) and is_input_required(result)


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


def _keep(backend: str, result: Any) -> Any:
    return result


def _rewrite_tool_result(backend: str, result: Any) -> Any:
    """Resource links inside tool results point at the exposed URIs."""
    if isinstance(result, dict):
        return rewrite_resource_links(backend, result)
    return result
