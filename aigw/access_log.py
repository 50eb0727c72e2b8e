"""The access log: the gateway's events as log lines, for operators.

A ``GatewayObserver`` that writes on the ``aigw.access`` namespace (the HTTP
access lines of ``web.server.BoundedSite`` share it), one event per JSON-RPC
request answered, per refused authentication and per upstream connection event.
Every value is a named field, so the JSON format carries each as a key and a
missing one as null; the text and journal formats show a readable line.  A
principal appears as issuer and subject only: never a token, nor its claims.

The ``logging.access_log`` switch decides whether the service registers it.
This module is a shared piece: it imports none of aigw's layers.
"""

from __future__ import annotations

from twisted.logger import Logger, LogLevel

from aigw.events import (
    AccessDecided,
    AuthenticationRefused,
    AuthServerFetched,
    RequestFinished,
    ToolFlagged,
    UpstreamConnection,
)

NAMESPACE = "aigw.access"
_REQUEST = "{method} {outcome} in {duration_ms}ms (upstream {upstream_ms}ms)"
#: Appended to the request line only when the event has the value.
_REQUEST_PARTS = (
    ("backend", " backend={backend}"),
    ("name", " name={name}"),
    ("error_code", " error_code={error_code}"),
    ("sub", " sub={sub}"),
)
#: Opening a connection is routine, and so nearly is a stale one whose request was
#: sent again; losing one or failing to connect is not.
_CONNECTION_LEVELS = {
    "opened": LogLevel.debug,
    "lost": LogLevel.warn,
    "replayed": LogLevel.debug,
    "failed": LogLevel.warn,
}


def _milliseconds(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class AccessLogObserver:
    """Writes each gateway event to the access log (see the module docstring)."""

    def __init__(self) -> None:
        # Made here: a Logger read from a class attribute takes the class's name as
        # its namespace, whatever namespace it was given.
        self.log = Logger(namespace=NAMESPACE, source=self)

    def request_finished(self, event: RequestFinished) -> None:
        principal = event.principal
        fields = {
            "method": event.method,
            "backend": event.backend,
            "name": event.name,
            "outcome": event.outcome,
            "error_code": event.error_code,
            "duration_ms": _milliseconds(event.seconds),
            "upstream_ms": _milliseconds(event.upstream_seconds),
            "iss": principal.issuer if principal is not None else None,
            "sub": principal.subject if principal is not None else None,
        }
        text = _REQUEST + "".join(part for key, part in _REQUEST_PARTS if fields[key] is not None)
        self.log.info(text, event="request_finished", **fields)

    def access_decided(self, event: AccessDecided) -> None:
        """Denials only, at debug: the request's line already says "denied"; this names
        the rule.  Allowed decisions (many per listing) are left to the audit trail."""
        if event.allowed:
            return
        self.log.debug(
            "access denied by {rule}: sub={sub} backend={backend} name={name}",
            event="access_denied",
            rule=event.rule,
            iss=event.principal.issuer,
            sub=event.principal.subject,
            backend=event.backend,
            name=event.name,
        )

    def authentication_refused(self, event: AuthenticationRefused) -> None:
        self.log.info(
            "authentication refused: {reason} (HTTP {status})",
            event="authentication_refused",
            status=event.status,
            reason=event.reason,
        )

    def upstream_connection(self, event: UpstreamConnection) -> None:
        text = "upstream {backend}: connection {state}" + (": {detail}" if event.detail else "")
        self.log.emit(
            _CONNECTION_LEVELS[event.state],
            text,
            event="upstream_connection",
            backend=event.backend,
            state=event.state,
            detail=event.detail,
        )

    def tool_flagged(self, event: ToolFlagged) -> None:
        """At warn: a backend serves a description that looks poisoned, or a definition
        that changed since it was pinned."""
        self.log.warn(
            "backend {backend}: {kind} {name!r} {action} by {by}: {reasons}",
            event="tool_flagged",
            by=event.by,
            backend=event.backend,
            kind=event.kind,
            name=event.name,
            action=event.action,
            reasons="; ".join(event.reasons),
        )

    def auth_server_fetched(self, event: AuthServerFetched) -> None:
        """Not logged here: the key store logs what it loads and why a fetch failed, and
        a failed introspection is an authentication refused."""
