"""The gateway's errors: a JSON-RPC error to answer the request with, or a step-up."""

from __future__ import annotations

from typing import Any

from aigw.protocol import jsonrpc
from aigw.upstream.api import UpstreamError

#: How a backend failed -> the JSON-RPC error code; every other kind is "unavailable".
_CODES = {
    "timeout": jsonrpc.UPSTREAM_TIMEOUT,
    # Not HTTP/1.1, not JSON, no answer, or a message over ``max_message_bytes``.
    "bad_reply": jsonrpc.UPSTREAM_BAD_REPLY,
    # No credentials for the backend: the token endpoint refused or is down, a token
    # exchange was refused, a claim cannot be a header (upstream/credentials.py).
    "credentials": jsonrpc.UPSTREAM_CREDENTIALS,
}


class GatewayError(Exception):
    """A JSON-RPC error to answer the client's request with."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def from_upstream(cls, error: UpstreamError) -> GatewayError:
        """A backend's failure as the client sees it: which backend, how, what was seen."""
        code = _CODES.get(error.kind, jsonrpc.UPSTREAM_UNAVAILABLE)
        return cls(
            code,
            f"backend {error.backend!r} failed: {error.kind}",
            {"backend": error.backend, "reason": error.kind, "detail": error.detail},
        )

    @classmethod
    def removed(cls, backend: str) -> GatewayError:
        """A call to a backend a reload took out of the config (``aigw/reload.py``)."""
        return cls(
            jsonrpc.UPSTREAM_UNAVAILABLE,
            f"backend {backend!r} was removed from the configuration",
            {"backend": backend, "reason": "removed"},
        )

    def to_error(self) -> dict[str, Any]:
        return jsonrpc.error_object(self.code, self.message, self.data)


class InsufficientScope(Exception):
    """The principal lacks scopes a backend requires: HTTP 403 (MCP Authorization, step-up)."""

    def __init__(self, needed: tuple[str, ...]) -> None:
        super().__init__(needed)
        self.needed = needed
