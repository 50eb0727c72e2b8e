"""Finding the bearer token of a request (RFC 6750 §2.1), and only there."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from aigw.auth.errors import TokenRejected

#: RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token.  The scheme name is
#: case-insensitive (RFC 9110 §11.1); the token is case-sensitive.
_BEARER = re.compile(rb"^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *$")
_SCHEME = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?: |$)")


def refuse_query_token(query_args: Mapping[bytes, Sequence[bytes]]) -> None:
    """Refuse a request carrying ``access_token`` in its query string.

    MCP Authorization 2025-11-25, "Token Requirements": access tokens MUST NOT
    be included in the URI query string (they end up in logs and histories).
    RFC 6750 §2.3 calls the method optional; MCP forbids it.
    """
    if b"access_token" in query_args:
        raise TokenRejected(
            "malformed", "access tokens must be sent in the Authorization header, not the URL"
        )


def extract_bearer(authorization_headers: Sequence[bytes]) -> str:
    """The token of the single ``Authorization: Bearer`` header.

    Raises TokenRejected ``missing`` when there is no Authorization header or
    it uses another scheme (RFC 6750 §3.1: a request with an unsupported
    authentication method is treated as lacking authentication), and
    ``malformed`` for several headers or a Bearer value that is not b64token
    (RFC 6750 §3.1 ``invalid_request``).
    """
    if not authorization_headers:
        raise TokenRejected("missing", "no access token was sent")
    if len(authorization_headers) > 1:
        raise TokenRejected("malformed", "several Authorization headers were sent")
    value = authorization_headers[0].strip(b" \t")
    match = _BEARER.match(value)
    if match is not None:
        return match.group(1).decode("ascii")
    if value[:7].lower() == b"bearer " or value.lower() == b"bearer":
        raise TokenRejected("malformed", "the Bearer credentials are not a valid b64token")
    if _SCHEME.match(value) is None:
        raise TokenRejected("malformed", "the Authorization header is not valid")
    raise TokenRejected("missing", "no Bearer access token was sent")
