"""The audit trail: who was allowed or denied what, by which rule, and how each call ended.

``AuditTrail`` is a ``GatewayObserver`` writing on the ``aigw.audit`` log
namespace, at info, so the events reach the process log (the journal) with the
rest.  It writes one event per access decision (every request naming a backend
item: the per-backend scopes, then the access policy) and one per
``tools/call``, ``prompts/get`` and ``resources/read`` answered
(``AUDITED_METHODS``); lists, pings and ``initialize`` are the access log's.
Both events of one request carry the same ``request_id``.

A principal appears as issuer, subject and client id only: never the token, its
other claims or an ``Authorization`` value.  Arguments appear only when
``audit.include_arguments`` is set (the gateway is then built to record them).

``audit_line`` is an event as the trail's own file has it (``audit_file.py``:
JSON lines, one object per event, time first, RFC 3339 UTC, for a SIEM).
This module is a shared piece: it imports none of aigw's layers.
"""

from __future__ import annotations

import datetime
import json
import secrets
from typing import TYPE_CHECKING, Any

from twisted.logger import LogEvent, Logger

from aigw.events import (
    AccessDecided,
    AuthenticationRefused,
    AuthServerFetched,
    GatewayObserver,
    RequestFinished,
    ToolFlagged,
    UpstreamConnection,
)
from aigw.principal import Principal

NAMESPACE = "aigw.audit"
#: The requests whose end is audited; their access decisions always are.
AUDITED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})

#: Every field of the trail's events, in the order the file writes them: both events
#: have those up to ``name``, a decision ``decision`` and ``rule``, an end the others.
FIELDS = (
    "event",
    "request_id",
    "issuer",
    "sub",
    "client_id",
    "method",
    "exposed",
    "backend",
    "name",
    "decision",
    "rule",
    "outcome",
    "error_code",
    "duration_ms",
    "upstream_ms",
    "arguments",
    "kind",
    "action",
    "checks",
    "reasons",
    "by",
)
_DECIDED = (
    "access {decision} by {rule}: {method} {exposed} for sub={sub} client_id={client_id} "
    "(request {request_id})"
)
_FINISHED = (
    "{method} {exposed} {outcome} in {duration_ms}ms: sub={sub} client_id={client_id} "
    "(request {request_id})"
)


def _who(principal: Principal | None) -> dict[str, Any]:
    """Issuer, subject and client id: nothing else of the token is ever written."""
    if principal is None:
        return {"issuer": None, "sub": None, "client_id": None}
    return {"issuer": principal.issuer, "sub": principal.subject, "client_id": principal.client_id}


class AuditTrail:
    """Writes access decisions and audited requests (see the module docstring)."""

    def __init__(self, include_arguments: bool = False) -> None:
        self.include_arguments = include_arguments
        # Request numbers restart with the process; this makes each id unique
        # across restarts and across the processes of one deployment.
        self.instance = secrets.token_hex(4)
        # Made here: a Logger read from a class attribute takes the class's name as
        # its namespace, whatever namespace it was given.
        self.log = Logger(namespace=NAMESPACE, source=self)

    def _request_id(self, number: int) -> str | None:
        return f"{self.instance}-{number}" if number else None

    def access_decided(self, event: AccessDecided) -> None:
        self.log.info(
            _DECIDED,
            event="access_decided",
            request_id=self._request_id(event.request_id),
            **_who(event.principal),
            method=event.method,
            exposed=event.exposed,
            backend=event.backend,
            name=event.name,
            decision="allowed" if event.allowed else "denied",
            rule=event.rule,
        )

    def request_finished(self, event: RequestFinished) -> None:
        if event.method not in AUDITED_METHODS:
            return
        fields: dict[str, Any] = {
            "event": "request_finished",
            "request_id": self._request_id(event.request_id),
            **_who(event.principal),
            "method": event.method,
            "exposed": event.exposed,
            "backend": event.backend,
            "name": event.name,
            "outcome": event.outcome,
            "error_code": event.error_code,
            "duration_ms": round(event.seconds * 1000.0, 3),
            "upstream_ms": round(event.upstream_seconds * 1000.0, 3),
        }
        if self.include_arguments:
            fields["arguments"] = event.arguments
        self.log.info(_FINISHED, **fields)

    def tool_flagged(self, event: ToolFlagged) -> None:
        """A tool or prompt flagged by screening or pinning: what was found, and whether it
        was hidden."""
        self.log.info(
            "{kind} {backend} {name} {action} by {by}: {checks}",
            event="tool_flagged",
            by=event.by,
            backend=event.backend,
            name=event.name,
            kind=event.kind,
            action=event.action,
            checks=list(event.checks),
            reasons=list(event.reasons),
        )

    def authentication_refused(self, event: AuthenticationRefused) -> None:
        """Not audited: no principal, and the access log has it."""

    def upstream_connection(self, event: UpstreamConnection) -> None:
        """Not audited: no principal, and the access log has it."""

    def auth_server_fetched(self, event: AuthServerFetched) -> None:
        """Not audited: the gateway's own housekeeping, counted by the metrics."""


if TYPE_CHECKING:
    # mypy holds AuditTrail to the Protocol it is registered under.
    _observer: type[GatewayObserver] = AuditTrail


def _rfc3339(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_line(event: LogEvent, ascii_only: bool = False) -> str:
    """One JSON object on one line: ``time``, then the trail's fields (``FIELDS``) that
    the event has; the keys Twisted adds to every event are left out.  ``ascii_only``:
    every non-ASCII character escaped (``audit_bytes``)."""
    record: dict[str, Any] = {"time": _rfc3339(event["log_time"])}
    record.update((key, event[key]) for key in FIELDS if key in event)
    text = json.dumps(record, ensure_ascii=ascii_only, separators=(",", ":"), default=str)
    return text + "\n"


def audit_bytes(event: LogEvent) -> bytes:
    """``audit_line`` in UTF-8, which every event has, whatever its strings hold.

    A client's JSON may carry lone surrogates (``"\\ud800"`` in a tool name or an
    argument: valid JSON text, RFC 8259 section 8.2, read by ``jsonrpc.loads``), which
    no UTF-8 holds: such a line is written with its non-ASCII characters escaped, as
    the client sent them, instead of failing, so no request can keep its events out of
    the trail."""
    try:
        return audit_line(event).encode("utf-8")
    except UnicodeEncodeError:
        return audit_line(event, ascii_only=True).encode("ascii")
