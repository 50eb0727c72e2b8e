"""What happens in the gateway, as typed events for whoever observes it.

The gateway, the authenticator (and its key store and introspection) and the
upstream clients report here; the access
log, Prometheus metrics and the audit trail consume the events (tracing, which
needs a start and an end around each call, has a seam of its own:
``aigw/tracing``).  Observers must be cheap and must not raise: they run on the hot path.
This module is a shared piece: it imports none of aigw's layers.
"""

from __future__ import annotations

from typing import Literal, Protocol

import attrs

from aigw.principal import Principal

#: How a request ended: answered with a result; answered with a JSON-RPC error of
#: aigw's or of the backend's; refused by the access policy or scopes; the backend
#: failed (unreachable, timeout, bad reply); the client cancelled or went away;
#: refused by a rate or in-flight limit (``limits``).
#: ``forwarded``: a 2026-07-28 retry sent on to the aigw process holding its parked call
#: (``gateway/parking.py``), which reports it again as it serves it.
#: ``refused``: an audited request refused because the audit file cannot be written
#: (``audit.on_write_error: refuse``).
Outcome = Literal[
    "ok", "error", "denied", "upstream_error", "cancelled", "limited", "forwarded", "refused"
]


@attrs.frozen
class RequestFinished:
    """One client JSON-RPC request answered (or given up)."""

    method: str
    principal: Principal | None
    #: The backend it was routed to (None: answered by aigw alone, or fanned out).
    backend: str | None
    #: The upstream tool, prompt or resource name (None when the method names none).
    name: str | None
    outcome: Outcome
    #: The JSON-RPC error code answered, if any.
    error_code: int | None
    #: Wall time from the request's start to its answer.
    seconds: float
    #: Of which waiting for backends.
    upstream_seconds: float
    #: The request's number in this process, shared with its ``AccessDecided`` (0: none).
    request_id: int = attrs.field(default=0, kw_only=True)
    #: The name or URI as the client sent it (``<backend>__<tool>``, ``aigw:<backend>/...``).
    exposed: str | None = attrs.field(default=None, kw_only=True)
    #: The ``arguments`` of a ``tools/call`` or ``prompts/get``, only when the gateway was
    #: built to record them (``audit.include_arguments``); None otherwise.
    arguments: object = attrs.field(default=None, kw_only=True)


@attrs.frozen
class AccessDecided:
    """The access policy decided on a named backend (and tool)."""

    principal: Principal
    backend: str
    name: str | None
    allowed: bool
    #: The rule that decided, as a config key path (``access.rules[2]``, ``access.default``,
    #: ``backends[0].required_scopes``).
    rule: str
    #: The request's method and number (shared with its ``RequestFinished``; 0: none).
    method: str | None = attrs.field(default=None, kw_only=True)
    request_id: int = attrs.field(default=0, kw_only=True)
    #: The name or URI as the client sent it.
    exposed: str | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class AuthenticationRefused:
    """A request was refused before routing (RFC 6750 §3.1)."""

    status: int
    reason: str


#: What happened to a connection to a backend; ``replayed``: a kept-alive one the
#: backend closed as a request went out on it, the request sent again on a new one
#: (RFC 9112 §9.3.1), where ``lost`` is a request that failed with its connection.
ConnectionState = Literal["opened", "lost", "replayed", "failed"]


@attrs.frozen
class UpstreamConnection:
    """A connection to a backend was opened, lost, or could not be made, or a
    request lost with a stale one was sent again."""

    backend: str
    state: ConnectionState
    detail: str = ""


@attrs.frozen
class AuthServerFetched:
    """aigw asked the authorization server: for its signing keys (the JWKS, with the
    discovery of their URI) or about an opaque token (introspection, RFC 7662)."""

    kind: Literal["jwks", "introspection"]
    #: It answered usefully: usable keys; an introspection answer (an inactive token too).
    succeeded: bool


@attrs.frozen
class ToolFlagged:
    """A backend's tool or prompt was flagged: its description by screening
    (``backends[].screen_tools``), or its definition changed since it was pinned
    (``backends[].pin_tools``, check ``pin_changed``); served with a warning, or hidden
    (``blocked``)."""

    backend: str
    kind: Literal["tool", "prompt"]
    #: The upstream name.
    name: str
    #: The checks that flagged it (``hidden_unicode``, ``ignore_instructions``, ...).
    checks: tuple[str, ...]
    #: Each finding in words: the check, where it was found, what it found.
    reasons: tuple[str, ...]
    action: Literal["warned", "blocked"]
    #: Which of the two flagged it.
    by: Literal["screening", "pinning"] = attrs.field(default="screening", kw_only=True)


class GatewayObserver(Protocol):
    """Receives every gateway event; see the module docstring for the rules."""

    def request_finished(self, event: RequestFinished) -> None: ...

    def access_decided(self, event: AccessDecided) -> None: ...

    def authentication_refused(self, event: AuthenticationRefused) -> None: ...

    def upstream_connection(self, event: UpstreamConnection) -> None: ...

    def auth_server_fetched(self, event: AuthServerFetched) -> None: ...

    def tool_flagged(self, event: ToolFlagged) -> None: ...


class Observers:
    """Every registered observer, called in order; itself a ``GatewayObserver``."""

    def __init__(self, *observers: GatewayObserver) -> None:
        self._observers: tuple[GatewayObserver, ...] = observers
        #: Whether any observer is registered (they may be added after start-up): a
        #: plain attribute, read twice per proxied call (``heard``).
        self.listening = bool(observers)

    def add(self, observer: GatewayObserver) -> None:
        self._observers = (*self._observers, observer)
        self.listening = True

    def request_finished(self, event: RequestFinished) -> None:
        for observer in self._observers:
            observer.request_finished(event)

    def access_decided(self, event: AccessDecided) -> None:
        for observer in self._observers:
            observer.access_decided(event)

    def authentication_refused(self, event: AuthenticationRefused) -> None:
        for observer in self._observers:
            observer.authentication_refused(event)

    def upstream_connection(self, event: UpstreamConnection) -> None:
        for observer in self._observers:
            observer.upstream_connection(event)

    def auth_server_fetched(self, event: AuthServerFetched) -> None:
        for observer in self._observers:
            observer.auth_server_fetched(event)

    def tool_flagged(self, event: ToolFlagged) -> None:
        for observer in self._observers:
            observer.tool_flagged(event)


def heard(observer: GatewayObserver) -> bool:
    """Whether an event told to ``observer`` reaches anyone: the hot path builds its
    per-request events only then (no access log, metrics or audit trail: none)."""
    return not isinstance(observer, Observers) or observer.listening
