"""The gateway's errors: a JSON-RPC error to answer the request with, or a step-up."""

from __future__ import annotations

from typing import Any

from aigw.protocol import jsonrpc
from aigw.upstream.api import AuthorizationRequired, UpstreamError

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
    def from_upstream(cls, error: UpstreamError, url_elicitation: bool = False) -> GatewayError:
        """A backend's failure as the client sees it: which backend, how, what was seen.

        ``url_elicitation``: the client declared URL-mode elicitation, so a user who must
        authorize aigw at the backend first gets the error made for it."""
        if isinstance(error, AuthorizationRequired):
            return cls.authorization_required(error, url_elicitation)
        code = _CODES.get(error.kind, jsonrpc.UPSTREAM_UNAVAILABLE)
        return cls(
            code,
            f"backend {error.backend!r} failed: {error.kind}",
            {"backend": error.backend, "reason": error.kind, "detail": error.detail},
        )

    @classmethod
    def authorization_required(
        cls, error: AuthorizationRequired, url_elicitation: bool
    ) -> GatewayError:
        """MCP 2025-11-25 client/elicitation "URL Elicitation Required Error": -32042 with
        one URL-mode elicitation (its ``elicitationId``), to retry the request after.

        A client that did not declare URL mode must not be sent one ("Capabilities"), so
        it gets the URL in the message of an ``UPSTREAM_CREDENTIALS`` error, for the
        user to open; the backend's token goes to neither (it stays in aigw's store)."""
        where = f"Authorization is required to use backend {error.backend!r}"
        if url_elicitation:
            message = f"{where}: open the link to sign in there, then retry."
            elicitation = {
                "mode": "url",
                "elicitationId": error.elicitation_id,
                "url": error.url,
                "message": message,
            }
            return cls(jsonrpc.URL_ELICITATION_REQUIRED, message, {"elicitations": [elicitation]})
        return cls(
            jsonrpc.UPSTREAM_CREDENTIALS,
            f"{where}: open {error.url} to sign in there, then retry.",
            {"backend": error.backend, "reason": error.kind, "url": error.url},
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
