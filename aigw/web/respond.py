"""Every error the HTTP server answers, turned into its response here and nowhere else.

Three shapes, each from its specification: OAuth errors (RFC 6750 §3.1: the
status, ``WWW-Authenticate`` and a JSON body with ``error``), MCP refusals at
the HTTP level (MCP basic/transports: the status and a JSON-RPC error body), and
aigw's own JSON errors for routes outside MCP (404, 405, 500, 503).
"""

from __future__ import annotations

from typing import Any

from aigw.auth.authenticator import AuthFailure
from aigw.gateway.limits import RETRY_AFTER_SECONDS, StreamLimitReached
from aigw.gateway.refused import Refused
from aigw.protocol import jsonrpc
from aigw.web.request import WebRequest


class HTTPRefusal(Exception):
    """An HTTP-level refusal with a JSON-RPC error body."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        headers: dict[bytes, bytes] | None = None,
        data: Any = None,
        request_id: Any = None,
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.data = data
        self.request_id = request_id

    def to_error(self) -> dict[str, Any]:
        return jsonrpc.error_object(self.code, self.message, self.data)


def stream_limit_refusal(reached: StreamLimitReached, request_id: Any = None) -> HTTPRefusal:
    """A refused stream as HTTP: the bound's status, Retry-After where waiting helps,
    and a JSON-RPC error body naming the bound (``TOO_MANY_STREAMS``) and its size
    (none when the shared limiter could not answer)."""
    headers = {}
    if reached.status in (429, 503):
        headers[b"Retry-After"] = str(RETRY_AFTER_SECONDS).encode("ascii")
    return HTTPRefusal(
        reached.status,
        jsonrpc.TOO_MANY_STREAMS,
        reached.message,
        headers=headers,
        data={"limit": reached.key, "max": reached.limit}
        if reached.limit is not None
        else {"limit": reached.key},
        request_id=request_id,
    )


def gateway_refusal(refused: Refused) -> HTTPRefusal:
    """A request the gateway refused (``gateway/refused.py``) with ``Retry-After`` in
    seconds (RFC 9110 §10.2.3) and its JSON-RPC error: over a limit, 429 (RFC 6585 §4),
    or 503 when the shared limiter cannot answer and ``limits.on_redis_error`` is
    ``closed`` (``RATE_LIMITED``, naming the rule); 503 when the audit file cannot be
    written and ``audit.on_write_error`` is ``refuse`` (``AUDIT_UNAVAILABLE``)."""
    return HTTPRefusal(
        refused.status,
        refused.code,
        refused.message,
        headers={b"Retry-After": str(refused.retry_after).encode("ascii")},
        data=refused.data,
        request_id=refused.request_id,
    )


def write_json(
    request: WebRequest, status: int, body: Any, headers: dict[bytes, bytes] | None = None
) -> bytes:
    """Set status and JSON content type; return the encoded body for Klein to write."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    for name, value in (headers or {}).items():
        request.setHeader(name, value)
    return jsonrpc.dumps(body)


def refuse(request: WebRequest, refusal: HTTPRefusal) -> bytes:
    """An MCP refusal: its status and headers, a JSON-RPC error body."""
    body = jsonrpc.error_response(refusal.request_id, refusal.to_error())
    return write_json(request, refusal.status, body, refusal.headers)


def refuse_auth(request: WebRequest, failure: AuthFailure) -> bytes:
    """A bearer-token refusal (RFC 6750 §3.1): 400, 401 or 403 with its challenge; 503
    with ``Retry-After`` when the token cannot be checked now (RFC 9110 §15.6.4)."""
    headers = {b"WWW-Authenticate": failure.www_authenticate.encode()}
    if failure.retry_after is not None:
        headers[b"Retry-After"] = str(failure.retry_after).encode("ascii")
    return write_json(request, failure.status, failure.body, headers)
