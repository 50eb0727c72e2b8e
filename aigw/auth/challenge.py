"""``WWW-Authenticate: Bearer`` challenges (RFC 6750 §3) as MCP clients expect them.

Every challenge carries ``resource_metadata`` (RFC 9728 §5.1), the one way an
MCP client learns where to get a token, and ``scope`` with the scopes the
request needs (MCP Authorization 2025-11-25, "Protected Resource Metadata
Discovery Requirements" and "Scope challenge handling").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

ErrorCode = Literal["invalid_request", "invalid_token", "insufficient_scope"]

#: RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (printable
#: ASCII without '"' and '\'); scope tokens are the same without the space.
_NOT_DESCRIPTION_CHAR = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_NOT_SCOPE_CHAR = re.compile(r"[^\x21\x23-\x5b\x5d-\x7e]")
#: A URI (RFC 3986) never holds '"', '\', controls or spaces once encoded.
_NOT_URI_CHAR = re.compile(r"[^\x21\x23-\x5b\x5d-\x7e]")

MAX_DESCRIPTION = 200


def _description(text: str) -> str:
    """Only RFC 6750 description characters; anything else (CR, LF, '"') becomes '?'.

    Replacing rather than escaping means no value can end the quoted-string or
    the header line: a description can never inject a header.
    """
    cleaned = _NOT_DESCRIPTION_CHAR.sub("?", text)
    if len(cleaned) > MAX_DESCRIPTION:
        cleaned = cleaned[: MAX_DESCRIPTION - 3] + "..."
    return cleaned


def _scope(scopes: Iterable[str]) -> str:
    """Space-separated scope-tokens; characters outside scope-token are dropped."""
    tokens = (_NOT_SCOPE_CHAR.sub("", s) for s in scopes)
    return " ".join(dict.fromkeys(t for t in tokens if t))


def bearer_challenge(
    resource_metadata: str,
    scopes: Iterable[str] = (),
    error: ErrorCode | None = None,
    error_description: str | None = None,
) -> str:
    """The value of a ``WWW-Authenticate`` header for a Bearer refusal.

    A request with no credentials gets no ``error`` (RFC 6750 §3.1); ``scope``
    is left out when no scope is needed.
    """
    params = [("resource_metadata", _NOT_URI_CHAR.sub("", resource_metadata))]
    scope = _scope(scopes)
    if scope:
        params.append(("scope", scope))
    if error is not None:
        params.append(("error", error))
        if error_description:
            params.append(("error_description", _description(error_description)))
    return "Bearer " + ", ".join(f'{name}="{value}"' for name, value in params)
