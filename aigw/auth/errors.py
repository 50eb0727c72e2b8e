"""Why a token was refused, in terms safe to show the client and to log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Reason = Literal[
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "unknown_key",
    "wrong_type",
    "inactive",
    "unsupported_algorithm",
    "unavailable",
]


class TokenRejected(Exception):
    """A bearer token cannot be accepted.

    ``reason`` is a short code for logs and metrics; ``description`` may be sent
    to the client as ``error_description`` (RFC 6750 §3), so it never quotes the
    token; ``hints`` holds identifying claims already read (sub, client_id, jti)
    so that a refusal can be traced, never the token itself.
    """

    def __init__(
        self,
        reason: Reason,
        description: str,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason, description)
        self.reason: Reason = reason
        self.description = description
        self.hints: dict[str, str] = dict(hints or {})

    def __str__(self) -> str:
        return f"{self.reason}: {self.description}"
