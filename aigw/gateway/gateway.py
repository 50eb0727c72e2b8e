"""The router: one MCP server facing the client, many MCP clients facing the backends.

``Gateway`` is the table from MCP method to the handler that answers it, and
the entry points the web layer uses; each job lives in its own module:

* ``client_sessions``: issue and open sealed session ids, the 2026-07-28 pool;
* ``backends``: probe, open, repair, join and end upstream sessions;
* ``exchange``: one request, notification or client answer to one backend;
* ``fanout``: one request to many backends at once;
* ``catalog``: exposed names, tool selectors, param headers, learning names;
* ``lists``: list fan-out with cursors;
* ``calls``: routing with authorization, forwarding, cancellation;
* ``relay``: server-to-client messages and the client's answers;
* ``input_required``: 2026-07-28 ``input_required`` results;
* ``asking``: a session client asked on a 2026-07-28 backend's behalf;
* ``parking``: a 2026-07-28 client's call parked while a session backend asks it;
* ``capabilities``: the union of the backends' capabilities;
* ``log_levels``: the client's log level, toward both kinds of backend;
* ``streams`` and ``listen``: the GET stream and ``subscriptions/listen``;
* ``resource_subscriptions``: session clients' subscriptions as a 2026-07-28 listen.
* ``reporting``: each request's record, span, rate-limit permit and report;
* ``reconfigure``: a reload's transports, bounds and list changes.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from aigw.config.holder import ConfigHolder
from aigw.events import GatewayObserver
from aigw.gateway.access import AccessPolicy
from aigw.gateway.answers import UpstreamAnswers
from aigw.gateway.asking import Asking, Questions
from aigw.gateway.backends import BackendSessions
from aigw.gateway.calls import ROUTED_METHODS, Calls
from aigw.gateway.capabilities import union_capabilities
from aigw.gateway.catalog import Catalog, ParamHeaders
from aigw.gateway.client_sessions import ClientSession, ClientSessions
from aigw.gateway.elicitations import completion
from aigw.gateway.errors import GatewayError
from aigw.gateway.exchange import Exchange
from aigw.gateway.fanout import fan_out
from aigw.gateway.flow import Valve
from aigw.gateway.groups import Groups
from aigw.gateway.limits import StreamLimitReached, StreamLimits, StreamSlot
from aigw.gateway.listen import ListenFilter, ListenStream, open_filter
from aigw.gateway.lists import LISTS, Lists
from aigw.gateway.log_levels import LogLevels
from aigw.gateway.parking import Parking
from aigw.gateway.pinning import Pinning
from aigw.gateway.ratelimit import build_limiter
from aigw.gateway.reconfigure import Reconfigure
from aigw.gateway.record import RequestRecord
from aigw.gateway.refused import AuditGate
from aigw.gateway.relay import Emit, Relay
from aigw.gateway.reporting import Reporting
from aigw.gateway.screening import Screening
from aigw.gateway.snapshot import Snapshots
from aigw.gateway.store_failures import StoreFailures
from aigw.gateway.stream_probes import RETAKE_INTERVAL, RETAKES, StreamProbes
from aigw.gateway.streams import Feeds, SessionStream
from aigw.principal import Principal, UserKey
from aigw.protocol import jsonrpc
from aigw.protocol.paramheaders import Annotations
from aigw.sealed.cursor import CursorCodec
from aigw.sealed.elicitation_notice import ElicitationNotice
from aigw.sealed.event_id import EventIdCodec, InvalidEventId
from aigw.sealed.request_id import RequestIdCodec
from aigw.sealed.request_state import RequestStateCodec
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import session_binding, session_digest
from aigw.store.api import Store
from aigw.tracing import NoTracer, TraceContext, Tracer
from aigw.upstream.api import UpstreamTransport

#: The warning about Last-Event-IDs that did not open (``Gateway.resumes``), at most once
#: per ``STORE_LOG_INTERVAL``: a client may send a forged one with every GET.
REFUSED_EVENT_ID_LINE = (
    "{count} Last-Event-ID(s) refused since the last report ({total} in all), their "
    "streams resumed from nowhere: {error}"
)

#: Answers one client request: (session, request, params, emit, record) -> response.
Handler = Callable[
    [ClientSession, jsonrpc.Request, dict[str, Any], Emit, RequestRecord],
    Awaitable[dict[str, Any] | None],
]


class Gateway(Service):
    """Routes MCP messages between one client session and the backends."""

    log = Logger()

    def __init__(
        self,
        config: ConfigHolder,
        reactor: Any,
        sealer: Sealer,
        policy: AccessPolicy,
        transports: Mapping[str, UpstreamTransport],
        observer: GatewayObserver,
        record_arguments: bool = False,
        tracer: Tracer | None = None,
        store: Store | None = None,
        audit_gate: AuditGate | None = None,
    ) -> None:
        """``store``: where tool pins persist (``state_dir``; ``pinning.py``).
        ``audit_gate``: why the audit file cannot be written now, or None; audited
        requests are refused while it says so (``audit.on_write_error: refuse``).
        ``record_arguments``: put each call's arguments in its ``RequestFinished``
        (``audit.include_arguments``); decided once here, so by default no request carries
        them.  ``tracer``: spans per request and upstream call (``aigw/tracing``; default
        off, the client's trace context passed on)."""
        initial = config.current
        self.clock = reactor
        self.observer = observer
        self.tracer = tracer or NoTracer()
        # One mapping, shared with every part that talks upstream: a reload changes it
        # in place (``reconfigure``).
        self.transports: dict[str, UpstreamTransport] = dict(transports)
        transports = self.transports
        self.snapshots = Snapshots(config)
        ids = itertools.count(1)
        self.reporting = Reporting(reactor, observer, self.tracer, audit_gate=audit_gate)
        param_headers = ParamHeaders()
        answers = UpstreamAnswers(transports)
        self.backends = BackendSessions(transports, reactor, ids, answers)
        self.sessions = ClientSessions(initial, reactor, sealer, self.backends)
        self.exchange = Exchange(
            transports, self.backends, param_headers, ids, self.tracer, answers
        )
        pinning = Pinning(store, observer, reactor)
        self.catalog = Catalog(
            policy, param_headers, self.exchange, reactor, Screening(observer), pinning
        )
        self.lists = Lists(CursorCodec(sealer), self.catalog, self.exchange, self.backends, reactor)
        request_ids = RequestIdCodec(sealer)
        #: Seals the merged event id of GET streams, and opens a client's Last-Event-ID.
        self.event_ids = EventIdCodec(sealer)
        #: Last-Event-IDs that did not open: counted, the latest reason logged now and then.
        self.refused_event_ids = StoreFailures(reactor, self.log, REFUSED_EVENT_ID_LINE)
        #: This process's name in the ids and states it seals (random per start).
        self.process = secrets.token_urlsafe(9)
        self.questions = Questions(request_ids, self.process)
        self.relay = Relay(request_ids, self.exchange, self.questions)
        self.log_levels = LogLevels(self.exchange)
        # The upstream streams client streams share (streams.py), and the resource
        # subscriptions a listen toward a 2026-07-28 backend carries for session clients.
        # Bounds on open client streams (and on upstream streams lingering for them).
        self.stream_limits = StreamLimits(
            initial.server.max_streams,
            initial.sessions.max_streams_per_user,
            lambda: self.limiter,
        )
        self.feeds = Feeds(
            transports,
            reactor,
            self._stream_linger,
            self.stream_limits,
            self.relay.unreachable,
            self.exchange.pinged,
        )
        self.calls = Calls(
            policy,
            observer,
            self.catalog,
            self.exchange,
            self.relay,
            Asking(self.questions, reactor),
            Parking(self.exchange, self.relay, RequestStateCodec(sealer), reactor, self.process),
            reactor,
            self.feeds.subscriptions,
            self.backends,
            record_arguments,
        )
        self.calls.audit_gate = audit_gate
        # Rate and in-flight limits (ratelimit.py), in this process or shared through Redis.
        self.limiter = self.calls.limiter = build_limiter(initial.limits, reactor)
        #: The open client streams, in the order they opened (a dict as an ordered set).
        self.open_streams: dict[Any, None] = {}
        #: The GET streams and listens among them by their session's binding, in the same
        #: order, for ``streams_of``: a lookup per refused GET or note heard, which anyone
        #: may send at will, not a scan of every open stream.  Kept in step by
        #: ``track_stream`` and ``untrack_stream``, the only ways in and out of
        #: ``open_streams``, with no empty group (``groups.py``).
        self._streams_by_binding: Groups[str, SessionStream, None] = Groups()
        #: Probes of a session's held GET stream before a second one is refused.
        self.stream_probes = StreamProbes(self.streams_of, reactor)
        self.reload = Reconfigure(self)
        config.subscribe(self.reload.follow_limits)
        self.handlers: dict[str, Handler] = {
            "ping": self._ping,
            **dict.fromkeys(LISTS, self.lists.answer),
            "logging/setLevel": self._set_level,
            "initialize": self._initialize_again,
            **dict.fromkeys(ROUTED_METHODS, self.calls.answer),
        }

    # -- lifecycle ---------------------------------------------------------

    def track_stream(self, stream: Any) -> None:
        self.open_streams[stream] = None
        if isinstance(stream, SessionStream):
            self._streams_by_binding.add(stream.session.binding, stream, None)

    def untrack_stream(self, stream: Any) -> None:
        self.open_streams.pop(stream, None)
        if isinstance(stream, SessionStream):
            self._streams_by_binding.discard(stream.session.binding, stream)

    def close_streams(self) -> None:
        """End every open client stream (shutdown: they would otherwise never finish),
        then the upstream streams left lingering for them."""
        for stream in list(self.open_streams):
            stream.close()
        self.feeds.close()

    def _stream_linger(self, backend: str) -> float:
        """``backends[].stream_linger`` of the current config (0: a backend a reload
        removed; its feed ends)."""
        config = self.snapshots.current().backends.get(backend)
        return 0.0 if config is None else config.stream_linger

    def _stream_retry(self) -> int:
        """``sessions.stream_retry`` of the current config, in the milliseconds of SSE's
        ``retry``: read as each GET stream is primed or ended, so a reload before a stop
        tells the clients of the streams it ends the new value."""
        return max(1, round(self.snapshots.current().config.sessions.stream_retry * 1000))

    def reconfigure(
        self, fresh: Mapping[str, UpstreamTransport], removed: Collection[str]
    ) -> dict[str, UpstreamTransport]:
        """A reload's backends (``Reconfigure.reconfigure``): the transports retired."""
        return self.reload.reconfigure(fresh, removed)

    def retire(self, name: str, transport: UpstreamTransport) -> None:
        """A removed backend's grace is over (``Reconfigure.retire``)."""
        self.reload.retire(name, transport)

    def announce_lists_changed(self) -> int:
        """Tell every open client stream its lists may have changed; how many streams."""
        return self.reload.announce_lists_changed()

    def elicitation_completed(self, notice: ElicitationNotice) -> int:
        """A user finished a URL elicitation this process asked: tell the session that
        got it, on its GET stream in this process (``elicitations.py``); how many
        streams were told (one at most: ``tell_completion``)."""
        session_id = self.calls.elicitations.completed(notice)
        if session_id is None:
            return 0
        streams = self.session_streams(session_digest(session_id), notice)
        return self.tell_completion(notice, streams)

    def streams_of(self, digest: bytes) -> list[SessionStream]:
        """The open GET streams in this process of the session whose id has SHA-256
        ``digest``, oldest first (``_streams_by_binding`` keeps the order they opened in)."""
        binding = session_binding(digest)  # each session's own, computed as it opened
        return [s for s in self._streams_by_binding.of(binding) if not s.closed]

    def session_streams(self, digest: bytes, user: ElicitationNotice) -> list[SessionStream]:
        """``streams_of`` the session, if that session is the user's of ``user`` (none
        otherwise)."""
        owner = (user.issuer, user.subject)
        return [s for s in self.streams_of(digest) if s.session.principal.user == owner]

    def tell_completion(self, notice: ElicitationNotice, streams: list[SessionStream]) -> int:
        """``notifications/elicitation/complete`` on one of ``streams`` (a session's,
        oldest first: ``streams_of``), the newest still open; 1 if told, else 0.

        A message goes on one stream, it is not broadcast (2025-11-25 basic/transports
        "Multiple Connections").  A session holds one GET stream, but may hold two here
        for a moment: its client reconnected while the old stream still looks open
        here (``stream_probes.py`` says how that comes).  The newest is
        the one the client reads, and never one a probe writes to while another is
        open: a probe (``stream_probes.py``) writes to the streams open as it began, a
        new GET of the session being why, so a stream opened since is newer than all
        of them.  In the probe's second the held stream may be the only one (the new
        GET waits for its place): it is told, as it lives until the probe finds it
        lost, and the new GET is refused if it lives."""
        open_streams = [stream for stream in streams if not stream.closed]
        if not open_streams:
            return 0
        open_streams[-1].send(completion(notice.elicitation_id))
        return 1

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return ensureDeferred(self._close_pools())

    async def _close_pools(self) -> None:
        await self.limiter.close()
        await self.sessions.pool.close()
        transports = self.transports
        await fan_out(
            transports,
            lambda name: transports[name].close(),
            self.log,
            "closing connections to {backend}: {reason}",
        )

    # -- sessions ----------------------------------------------------------

    async def initialize(
        self, principal: Principal, params: dict[str, Any], trace: TraceContext | None = None
    ) -> tuple[dict[str, Any], str]:
        """Answer ``initialize`` (``ClientSessions.initialize``): the result and session id."""
        record = self.reporting.started("initialize", trace)
        try:
            opened = await self.sessions.initialize(principal, params, self.snapshots.current())
        except GatewayError as error:
            record.upstream_seconds = self.clock.seconds() - record.started
            self.reporting.report(principal, record, "upstream_error", error.code)
            raise
        record.upstream_seconds = self.clock.seconds() - record.started
        self.reporting.report(principal, record, "ok", None)
        return opened

    def open_session(self, principal: Principal, session_id: str) -> ClientSession:
        """Open a sealed session id for this principal (raises SessionNotFound), with the
        log level its client set here (``log_levels.py``)."""
        session = self.sessions.open(principal, session_id, self.snapshots.current())
        session.log_level = self.log_levels.of(session.binding)
        return session

    async def stateless_session(self, principal: Principal) -> ClientSession:
        """The view of a 2026-07-28 request: this user's pooled upstream sessions."""
        return await self.sessions.stateless(principal, self.snapshots.current())

    def capabilities(self, session: ClientSession) -> dict[str, Any]:
        """What aigw offers this session (``server/discover``)."""
        return union_capabilities(session.backends.values())

    async def end_session(self, session: ClientSession) -> None:
        """DELETE: the id opens no more (basic/transports "Session Management": 404
        from now on), and every upstream session of this client session ends."""
        self.sessions.end(session)
        await self.backends.end_session(session)

    # -- requests ----------------------------------------------------------

    def handle_request(
        self,
        session: ClientSession,
        request: jsonrpc.Request,
        emit: Emit,
        valve: Valve | None = None,
    ) -> Coroutine[Any, Any, dict[str, Any] | None]:
        """The response to one client request (None: cancelled, nothing to send);
        ``valve``: the client's flow control, which the upstream readers join.
        ``Reporting.request``'s coroutine itself: no layer of its own to await."""
        return self.reporting.request(
            session,
            request,
            self.limiter,
            lambda view, record: self._answer(view, request, emit, record, valve),
        )

    async def _answer(
        self,
        session: ClientSession,
        request: jsonrpc.Request,
        emit: Emit,
        record: RequestRecord,
        valve: Valve | None,
    ) -> dict[str, Any] | None:
        record.valve = valve
        params = request.params
        try:
            if params is None:
                params = {}
            elif not isinstance(params, dict):
                # MCP's schema: a request's params is an object (JSON-RPC's by-position
                # arrays name nothing MCP knows).
                raise GatewayError(jsonrpc.INVALID_PARAMS, "params must be an object")
            handler = self.handlers.get(request.method, self._unknown)
            return await handler(session, request, params, emit, record)
        except GatewayError as error:
            return jsonrpc.error_response(request.id, error.to_error())

    def started(self, method: str, trace: TraceContext | None = None) -> RequestRecord:
        """A record for a request the web layer answers itself (``server/discover``),
        reported with :meth:`answered` like the ones routed here."""
        return self.reporting.started(method, trace)

    def answered(
        self, principal: Principal, record: RequestRecord, answer: dict[str, Any] | None
    ) -> None:
        self.reporting.finished(principal, record, answer)

    async def _ping(
        self,
        session: ClientSession,
        request: jsonrpc.Request,
        params: dict[str, Any],
        emit: Emit,
        record: RequestRecord,
    ) -> dict[str, Any] | None:
        return jsonrpc.result_response(request.id, {})

    async def _set_level(
        self,
        session: ClientSession,
        request: jsonrpc.Request,
        params: dict[str, Any],
        emit: Emit,
        record: RequestRecord,
    ) -> dict[str, Any] | None:
        await self.log_levels.set_level(session, params)
        record.upstream_seconds = self.clock.seconds() - record.started
        return jsonrpc.result_response(request.id, {})

    async def _initialize_again(
        self,
        session: ClientSession,
        request: jsonrpc.Request,
        params: dict[str, Any],
        emit: Emit,
        record: RequestRecord,
    ) -> dict[str, Any] | None:
        raise GatewayError(jsonrpc.INVALID_REQUEST, "session is already initialized")

    async def _unknown(
        self,
        session: ClientSession,
        request: jsonrpc.Request,
        params: dict[str, Any],
        emit: Emit,
        record: RequestRecord,
    ) -> dict[str, Any] | None:
        raise GatewayError(jsonrpc.METHOD_NOT_FOUND, f"method not found: {request.method}")

    def param_headers_of(self, exposed: str) -> Annotations:
        """The ``x-mcp-header`` annotations of an exposed tool name (empty when none)."""
        return self.catalog.param_headers_of(exposed)

    async def cancel(self, session: ClientSession, request_id: Any, reason: str) -> None:
        """Cancel a request in flight (``Calls.cancel``)."""
        await self.calls.cancel(session, request_id, reason)

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
            await fan_out(
                session.backends,
                lambda name: self.exchange.notify(session, name, message.method, params),
                self.log,
                "notification {method} to {backend}: {reason}",
                method=message.method,
            )
            return
        self.log.debug("notification {method} not routed", method=message.method)

    def answer_elsewhere(
        self, session: ClientSession, message: jsonrpc.Response | jsonrpc.ErrorResponse
    ) -> str | None:
        """The peer URL of the process waiting for this client answer, when it is another
        (``Questions.elsewhere``); None otherwise."""
        return self.questions.elsewhere(session, message)

    async def handle_client_response(self, session: ClientSession, message: Any) -> None:
        """The client's answer to a relayed server-to-client request goes back to its backend."""
        await self.relay.to_backend(session, message)

    # -- streams -------------------------------------------------------------

    async def get_stream_slot(self, user: UserKey, session: ClientSession) -> StreamSlot:
        """The place of ``session``'s GET stream (``limits.py``), or StreamLimitReached.
        When the session holds one already, that one is probed first, here or, through
        Redis, in whichever process holds it (``stream_probes.py``): a stream lost
        meanwhile gives its place to this one."""
        limits = self.stream_limits
        try:
            return await limits.acquire(user, session.binding)
        except StreamLimitReached as reached:
            if reached.key != "session":
                raise
            refused = reached
        digest = session_digest(session.session_id)
        probes = self.stream_probes
        if probes.held_here(digest):
            lost = await probes.probe_here(digest)
        else:
            # Lost elsewhere a moment ago (a proxy passing the close on at once), the
            # holder's lease may be on its way back: one more take first.
            await deferLater(self.clock, RETAKE_INTERVAL, lambda: None)
            slot = await self._retake(user, session, 1)
            if slot is not None:
                return slot
            lost = await probes.await_others(digest)
        # Once more even when nothing was lost: the holder may have lost its stream
        # just before the probe, its place on the way back.
        slot = await self._retake(user, session, RETAKES if lost else 1)
        if slot is None:
            raise refused
        return slot

    async def _retake(self, user: UserKey, session: ClientSession, times: int) -> StreamSlot | None:
        """The GET stream's place, tried ``times`` times ``RETAKE_INTERVAL`` apart; None
        while the session's place stays taken."""
        for attempt in range(times):
            if attempt:
                await deferLater(self.clock, RETAKE_INTERVAL, lambda: None)
            try:
                return await self.stream_limits.acquire(user, session.binding)
            except StreamLimitReached as again:
                if again.key != "session":
                    raise
        return None

    def session_stream(
        self, session: ClientSession, write: Callable[[bytes], None], last_event_id: str | None
    ) -> SessionStream:
        """The session's GET stream (``streams.py``), to be held open by the web layer."""
        return SessionStream(
            self.feeds,
            self.relay.to_client,
            session,
            write,
            self.event_ids,
            self.resumes(session, last_event_id),
            self._stream_retry,
        )

    def resumes(self, session: ClientSession, last_event_id: str | None) -> dict[str, str]:
        """Each backend's event id a GET stream of ``session`` resumes from: its
        ``Last-Event-ID`` opened (``sealed/event_id.py``).  One that does not open (forged,
        another session's, tampered, of an older format, too long) resumes every backend
        from nowhere, as 2025-11-25 basic/transports "Resumability and Redelivery" has a
        server do with an id it cannot place: counted, and logged now and then, as a
        client may send one with every GET."""
        try:
            return self.event_ids.decode(last_event_id, session.binding, session.backends)
        except InvalidEventId as error:
            self.refused_event_ids.report(error)
            return {}

    async def listen_filter(self, session: ClientSession, params: Any) -> ListenFilter:
        """What a ``subscriptions/listen`` lets through; subscribes upstream (``listen.py``)."""
        return await open_filter(self.calls, self.exchange, session, params)

    def listen_stream(
        self,
        session: ClientSession,
        write: Callable[[bytes], None],
        subscription_id: Any,
        notifications: ListenFilter,
        refuse: Callable[[dict[str, Any]], None],
    ) -> ListenStream:
        """A ``subscriptions/listen`` stream (``listen.py``)."""
        return ListenStream(
            self.feeds,
            self.relay.to_client,
            session,
            write,
            subscription_id,
            notifications,
            refuse,
            self.event_ids,
        )
