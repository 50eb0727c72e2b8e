"""``GatewayMetrics``: the gateway's events as Prometheus series.

A ``GatewayObserver`` (every MCP request, access decision, authentication
refusal, upstream connection, JWKS fetch and introspection request, from which
it also ages the signing keys), plus methods for what is not an event yet:
HTTP requests by route, config reloads, and gauges read from callables at
scrape time (streaming sessions, pooled upstream sessions, streams).

``request_finished`` runs for every MCP request, and ``access_decided`` for
every tool of a listing: both find their series in a dict keyed by the event's
raw values, so a known request costs a lookup, a counter increment and three
histogram observations, all lock-free (see ``lockfree``).  A raw value is a
key of that dict only when it is its own label (see ``labels``): a flood of
made-up names cannot grow it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final, get_args

from prometheus_client import CollectorRegistry, Gauge, Info
from prometheus_client.metrics_core import CounterMetricFamily
from twisted.logger import Logger

from aigw import __version__
from aigw.events import (
    AccessDecided,
    AuthenticationRefused,
    AuthServerFetched,
    ConnectionState,
    GatewayObserver,
    RequestFinished,
    ToolFlagged,
    UpstreamConnection,
)
from aigw.metrics.labels import (
    NONE,
    OTHER,
    ROUTES,
    TOOL_CALL,
    HTTPRoutes,
    LabelValues,
    RequestLabels,
    Route,
    ToolAllowed,
    status_label,
)
from aigw.metrics.lockfree import LockFreeCounter, LockFreeHistogram
from aigw.metrics.registry import new_registry
from aigw.protocol.pins import PIN_CHECK
from aigw.protocol.screening import CHECKS

#: Whole requests and time upstream: a ping to a tool call of minutes.
REQUEST_BUCKETS: Final = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
#: Time in aigw itself: tens of microseconds when all is well.
GATEWAY_BUCKETS: Final = (
    *(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025),
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CONNECTION_STATES: Final = get_args(ConnectionState)
OUTCOMES: Final = ("success", "failure")
#: Caps on labels whose values come from aigw's code or config, not from clients:
#: a safety net, not a limit anyone should meet.
RULES_LIMIT: Final = 256
REASONS_LIMIT: Final = 32
STATUSES_LIMIT: Final = 16

Count = Callable[[], None]
Observe = Callable[[float], None]
#: What a watched gauge reads at scrape: a number, or None for "not known yet".
Reading = Callable[[], float | None]
#: What a watched counter with labels reads at scrape: its values by label values.
Readings = Callable[[], Mapping[tuple[str, ...], float]]
RequestKey = tuple[str, str | None, str | None, str]

log = Logger()


class GatewayMetrics:
    """Counts what happens in one gateway into ``registry`` (its own by default).

    ``backends`` are the configured backend names: the only values of a
    ``backend`` label.  ``tool_allowed(backend, name)`` says whether a tool name
    may be a ``tool`` label (a tool the backend listed, its selector allowing it); at most
    ``tools_per_backend`` tools per backend are.  ``seconds`` is the clock of
    the last-reload timestamp (``reactor.seconds``), which starts at the
    metrics' creation: they are made from a config just loaded.
    """

    def __init__(
        self,
        backends: Iterable[str],
        tool_allowed: ToolAllowed,
        *,
        registry: CollectorRegistry | None = None,
        seconds: Callable[[], float] = time.time,
        tools_per_backend: int = 200,
    ) -> None:
        self.registry = new_registry() if registry is None else registry
        self._seconds = seconds
        backends = tuple(backends)
        self._request_labels = RequestLabels(backends, tool_allowed, tools_per_backend)
        self._backends = self._request_labels.backends
        self._rules = LabelValues(limit=RULES_LIMIT)
        self._reasons = LabelValues(limit=REASONS_LIMIT)
        self._statuses = LabelValues(limit=STATUSES_LIMIT)
        self._states = LabelValues(CONNECTION_STATES)
        self._checks = LabelValues((*CHECKS, PIN_CHECK))
        #: When the signing keys were last fetched (``seconds``), None before.
        self._keys_fetched_at: float | None = None
        self._define_metrics()
        # Series by raw key (hot path), and by label values (the rest).
        self._request_series: dict[RequestKey, tuple[Count, Observe, Observe]] = {}
        self._request_series_by_labels: dict[tuple[str, ...], tuple[Count, Observe, Observe]] = {}
        self._decision_counts: dict[tuple[str, bool, str], Count] = {}
        self._http_counts: dict[tuple[str, int], Count] = {}
        self._initialise_series(backends)

    def _define_metrics(self) -> None:
        registry = self.registry
        self._requests = LockFreeCounter(
            "aigw_mcp_requests_total",
            "MCP requests answered, by method, backend, tool (tools/call) and outcome.",
            ("method", "backend", "tool", "outcome"),
            registry=registry,
        )
        self._durations = LockFreeHistogram(
            "aigw_mcp_request_duration_seconds",
            "Wall time of MCP requests, from receipt to answer, by method.",
            ("method",),
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._gateway_observe: Observe = (
            LockFreeHistogram(
                "aigw_mcp_gateway_seconds",
                "Time of MCP requests spent in aigw: the whole request less the time upstream.",
                buckets=GATEWAY_BUCKETS,
                registry=registry,
            )
            .labels()
            .observe
        )
        self._upstream = LockFreeHistogram(
            "aigw_mcp_upstream_seconds",
            "Time of MCP requests spent waiting for backends, by backend (empty: fanned out).",
            ("backend",),
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._decisions = LockFreeCounter(
            "aigw_access_decisions_total",
            "Access policy decisions, by backend, decision and the deciding rule's key path.",
            ("backend", "decision", "rule"),
            registry=registry,
        )
        self._flagged = LockFreeCounter(
            "aigw_tools_flagged_total",
            "Tools and prompts flagged by screening or pinning, by backend, check and action.",
            ("backend", "check", "action"),
            registry=registry,
        )
        self._refusals = LockFreeCounter(
            "aigw_auth_refusals_total",
            "Requests refused before routing (token or scope), by status and reason.",
            ("status", "reason"),
            registry=registry,
        )
        self._connections = LockFreeCounter(
            "aigw_upstream_connections_total",
            "Connections to backends opened, lost mid-exchange, failed, or lost stale with their "
            "request sent again (replayed), by backend.",
            ("backend", "state"),
            registry=registry,
        )
        self._http = LockFreeCounter(
            "aigw_http_requests_total",
            "HTTP requests of clients answered, by route and status.",
            ("route", "status"),
            registry=registry,
        )
        self._jwks = LockFreeCounter(
            "aigw_jwks_fetches_total",
            "Fetches of the issuer's signing keys (JWKS), by outcome.",
            ("outcome",),
            registry=registry,
        )
        self._introspections = LockFreeCounter(
            "aigw_introspection_requests_total",
            "Token introspection requests (RFC 7662), by outcome.",
            ("outcome",),
            registry=registry,
        )
        self._reloads = LockFreeCounter(
            "aigw_config_reloads_total",
            "Configuration reloads, by outcome.",
            ("outcome",),
            registry=registry,
        )
        self._last_reload = Gauge(
            "aigw_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, in Unix seconds.",
            registry=registry,
        )
        Info("aigw_build", "The running aigw.", registry=registry).info({"version": __version__})
        self.watch_gauge(
            "aigw_signing_keys_age_seconds",
            "Seconds since the issuer's signing keys were last fetched (NaN: never).",
            self._signing_keys_age,
        )

    def _initialise_series(self, backends: tuple[str, ...]) -> None:
        """Series a rate or an alert looks at exist from the start, at zero."""
        for outcome in OUTCOMES:
            self._jwks.labels(outcome)
            self._introspections.labels(outcome)
            self._reloads.labels(outcome)
        for backend in backends:
            for state in CONNECTION_STATES:
                self._connections.labels(backend, state)
        self._last_reload.set(self._seconds())

    # ------------------------------------------------------------ GatewayObserver

    def request_finished(self, event: RequestFinished) -> None:
        method = event.method
        key = (method, event.backend, event.name if method == TOOL_CALL else None, event.outcome)
        series = self._request_series.get(key)
        if series is None:
            series = self._new_request_series(key)
        count, observe_duration, observe_upstream = series
        seconds = event.seconds
        upstream = event.upstream_seconds
        count()
        observe_duration(seconds)
        self._gateway_observe(seconds - upstream if seconds > upstream else 0.0)
        if upstream > 0.0:
            observe_upstream(upstream)

    def _new_request_series(self, key: RequestKey) -> tuple[Count, Observe, Observe]:
        labels = self._request_labels(*key)
        series = self._request_series_by_labels.get(labels)
        if series is None:
            series = self._request_series_by_labels[labels] = (
                self._requests.labels(*labels).inc,
                self._durations.labels(labels[0]).observe,
                self._upstream.labels(labels[1]).observe,
            )
        method, backend, name, outcome = key
        if labels == (method, backend or NONE, name or NONE, outcome):
            self._request_series[key] = series
        return series

    def access_decided(self, event: AccessDecided) -> None:
        key = (event.backend, event.allowed, event.rule)
        count = self._decision_counts.get(key)
        if count is None:
            backend = self._backends(event.backend)
            rule = self._rules(event.rule)
            count = self._decisions.labels(
                backend, "allowed" if event.allowed else "denied", rule
            ).inc
            if (backend, rule) == (event.backend, event.rule):
                self._decision_counts[key] = count
        count()

    def authentication_refused(self, event: AuthenticationRefused) -> None:
        status = self._statuses(status_label(event.status))
        self._refusals.labels(status, self._reasons(event.reason)).inc()

    def upstream_connection(self, event: UpstreamConnection) -> None:
        self._connections.labels(self._backends(event.backend), self._states(event.state)).inc()

    def auth_server_fetched(self, event: AuthServerFetched) -> None:
        """A JWKS fetch (usable keys: a success, which makes the keys' age 0) or an
        introspection request (an answer, an inactive token's too, is a success)."""
        outcome = _outcome(event.succeeded)
        if event.kind == "jwks":
            self._jwks.labels(outcome).inc()
            if event.succeeded:
                self._keys_fetched_at = self._seconds()
        else:
            self._introspections.labels(outcome).inc()

    def tool_flagged(self, event: ToolFlagged) -> None:
        """Once per check of each newly flagged description (not per list)."""
        backend = self._backends(event.backend)
        for check in event.checks:
            self._flagged.labels(backend, self._checks(check), event.action).inc()

    # ------------------------------------------------------------ not events (yet)

    def http_request_finished(self, route: Route, status: int) -> None:
        """One HTTP request of a client answered (see ``labels.HTTPRoutes``)."""
        key = (route, status)
        count = self._http_counts.get(key)
        if count is None:
            route_label = route if route in ROUTES else OTHER
            status_text = status_label(status)
            count = self._http.labels(route_label, status_text).inc
            if (route_label, status_text) == (route, str(status)):
                self._http_counts[key] = count
        count()

    def http_observer(self, mcp_path: str) -> Callable[[bytes, int], None]:
        """A ``(path, status)`` callable for ``BoundedSite(on_request_finished=...)``."""
        routes = HTTPRoutes(mcp_path)

        def request_finished(path: bytes, status: int) -> None:
            self.http_request_finished(routes(path), status)

        return request_finished

    def config_reloaded(self, succeeded: bool) -> None:
        """One configuration reload ended."""
        self._reloads.labels(_outcome(succeeded)).inc()
        if succeeded:
            self._last_reload.set(self._seconds())

    # ------------------------------------------------------------ gauges read at scrape

    def watch_gauge(self, name: str, documentation: str, read: Reading) -> None:
        """A gauge whose value is ``read()`` at each scrape: None, or an exception
        (logged), shows as NaN.  A name can be watched once."""
        Gauge(name, documentation, registry=self.registry).set_function(_reading(name, read))

    def watch_counter(self, name: str, documentation: str, read: Reading) -> None:
        """A counter whose value is ``read()`` at each scrape, for a count kept where it
        happens (it only grows while the process lives); ``name`` without ``_total``,
        which the exposition adds.  None, or an exception (logged), shows as NaN."""
        value = _reading(name, read)
        self.registry.register(_CounterReading(name, documentation, (), lambda: {(): value()}))

    def watch_counters(
        self, name: str, documentation: str, labels: tuple[str, ...], read: Readings
    ) -> None:
        """``watch_counter`` with ``labels``: ``read()`` maps their values (a fixed set,
        bounded where the count is kept) to each series' count.  An exception (logged)
        shows as no series."""
        self.registry.register(_CounterReading(name, documentation, labels, _readings(name, read)))

    def watch_streaming_sessions(self, read: Reading) -> None:
        """Sessions live in their sealed ids, in no process: what a process knows of
        are those holding a GET stream open on it (and the pooled upstream ones)."""
        self.watch_gauge(
            "aigw_streaming_sessions",
            "Client sessions (2025-11-25) holding a GET stream open on this process.",
            read,
        )

    def watch_pooled_upstream_sessions(self, read: Reading) -> None:
        self.watch_gauge(
            "aigw_pooled_upstream_sessions",
            "Sessions with backends held in the pool of 2026-07-28 (stateless) clients.",
            read,
        )

    def watch_open_streams(self, read: Reading) -> None:
        self.watch_gauge(
            "aigw_open_streams",
            "Server-to-client streams open with clients (GET, subscriptions/listen).",
            read,
        )

    def watch_limiter_store_failures(self, read: Reading) -> None:
        self.watch_counter(
            "aigw_limiter_store_failures",
            "Times the shared limiter store (limits.redis_url) failed or timed out: takes, "
            "releases and renewals of in-flight leases.",
            read,
        )

    def watch_session_store_failures(self, read: Reading) -> None:
        self.watch_counter(
            "aigw_session_store_failures",
            "Times the shared store of ended sessions (sessions.redis_url) failed or timed out.",
            read,
        )

    def watch_refused_event_ids(self, read: Reading) -> None:
        self.watch_counter(
            "aigw_refused_event_ids",
            "GET streams whose Last-Event-ID did not open (forged, tampered, sealed for "
            "another session or with a retired key, old format): every backend resumed "
            "from nowhere.",
            read,
        )

    def watch_stream_probes(self, read: Readings) -> None:
        """A session's held GET stream probed before a second GET is refused
        (``gateway/stream_probes.py``): ``read()`` maps (where, outcome) to a count."""
        self.watch_counters(
            "aigw_stream_probes",
            "Probes of a session's held GET stream before a second GET is refused, by where "
            "the stream was (here, elsewhere: awaiting another process's word) and outcome "
            "(lost, alive, failed, unanswered, full).",
            ("where", "outcome"),
            read,
        )

    def watch_linger_dropped_messages(self, read: Reading) -> None:
        self.watch_counter(
            "aigw_stream_linger_dropped_messages",
            "Backend messages a lingering upstream stream (backends[].stream_linger) held "
            "for the next client stream and dropped, past its bound of 100.",
            read,
        )

    def watch_audit_file(self, errors: Reading, unavailable: Callable[[], str | None]) -> None:
        """The audit trail's own file (``audit.file``, ``audit_file.py``)."""
        self.watch_counter(
            "aigw_audit_write_errors",
            "Audit events the audit file (audit.file) could not take when they happened: "
            "lost with audit.on_write_error log; with refuse, held (up to 1000) and written later.",
            errors,
        )
        self.watch_gauge(
            "aigw_audit_file_writable",
            "1 while the audit file (audit.file) is written, 0 while writing it fails.",
            lambda: 0 if unavailable() else 1,
        )

    def _signing_keys_age(self) -> float | None:
        fetched = self._keys_fetched_at
        return None if fetched is None else self._seconds() - fetched


if TYPE_CHECKING:
    # mypy holds GatewayMetrics to the Protocol it is registered under.
    _observer: type[GatewayObserver] = GatewayMetrics


def _outcome(succeeded: bool) -> str:
    return "success" if succeeded else "failure"


class _CounterReading:
    """A collector of one counter read at scrape time (``watch_counter``,
    ``watch_counters``): its series by label values."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: tuple[str, ...],
        values: Callable[[], Mapping[tuple[str, ...], float]],
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = labels
        self._values = values

    def describe(self) -> Iterable[CounterMetricFamily]:
        """The name, for the registry's check of duplicates, without reading the value."""
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labels)

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for values, count in self._values().items():
            family.add_metric(values, count)
        yield family


def _reading(name: str, read: Reading) -> Callable[[], float]:
    """``read`` made safe to call from a scrape: a failing reading must not fail the rest."""

    def value() -> float:
        try:
            result = read()
        except Exception:
            log.failure("reading the metric {name} failed", name=name)
            return math.nan
        return math.nan if result is None else float(result)

    return value


def _readings(name: str, read: Readings) -> Callable[[], Mapping[tuple[str, ...], float]]:
    """``read`` made safe to call from a scrape, as ``_reading``: no series on failure."""

    def values() -> Mapping[tuple[str, ...], float]:
        try:
            return read()
        except Exception:
            log.failure("reading the metric {name} failed", name=name)
            return {}

    return values
