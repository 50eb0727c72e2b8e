"""Requests aigw refuses itself before any backend sees them, because a part it needs
cannot serve them now: a rate or in-flight limit (``ratelimit.RateLimited``), or the
audit trail's file (``AuditUnavailable``).  Each is answered the same way, by
``web/respond.py``'s ``gateway_refusal``: its HTTP status with ``Retry-After`` (RFC 9110
§10.2.3) and a JSON-RPC error body with the request's id (MCP basic/transports), and
reported with its ``outcome``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from aigw.events import Outcome
from aigw.protocol import jsonrpc

#: Why the audit file cannot be written now, or None while it can (``audit_file.py``).
AuditGate = Callable[[], str | None]
#: Retry-After of a refusal for want of the audit file: it is probed every second.
AUDIT_RETRY_SECONDS = 5


class Refused(Exception):
    """A request refused: ``status``, ``code``, ``message`` and ``data`` answer it,
    ``key`` (the config key of what refused it) goes to the access log."""

    outcome: ClassVar[Outcome] = "limited"

    def __init__(
        self, status: int, code: int, key: str, retry_after: int, message: str, data: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.key = key
        self.retry_after = retry_after
        self.message = message
        self.data = data
        #: The client's id of the refused request, set by the gateway.
        self.request_id: Any = None


class AuditUnavailable(Refused):
    """An audited request (``audit.AUDITED_METHODS``) while the audit file cannot be
    written and ``audit.on_write_error`` is ``refuse``: 503, fail closed."""

    outcome: ClassVar[Outcome] = "refused"

    def __init__(self, reason: str) -> None:
        super().__init__(
            503,
            jsonrpc.AUDIT_UNAVAILABLE,
            "audit.on_write_error",
            AUDIT_RETRY_SECONDS,
            "the audit trail is unavailable, so audited requests are refused; retry later",
            {"reason": reason, "retry_after": AUDIT_RETRY_SECONDS},
        )


def check_audit(gate: AuditGate) -> None:
    """``AuditUnavailable`` while ``gate`` (``audit.on_write_error: refuse``) says the
    audit file cannot be written."""
    reason = gate()
    if reason is not None:
        raise AuditUnavailable(reason)
