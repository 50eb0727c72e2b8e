"""aigw registers itself as a client of a backend's authorization server (RFC 7591).

Once per backend and authorization server: the registration is stored
(``store.api.RegisteredClient``) and serves every user.  aigw asks to be a
confidential client (``client_secret_basic``, RFC 7591 §2) with the authorization
code and refresh token grants and its own callback as the one redirect URI; a server
that makes it a public client (no ``client_secret``) is fine too: PKCE protects the
code either way (RFC 7636).
"""

from __future__ import annotations

import json
import re

from aigw.httpjson import Clock, FetchFailed, HTTPClient, excerpt, fetch, parse_json_object
from aigw.store.api import RegisteredClient

MAX_RESPONSE_BYTES = 64 * 1024
CLIENT_NAME = "aigw"
#: RFC 6749 Appendix A.1, A.2: a client_id and client_secret are visible ASCII (VSCHAR);
#: aigw takes up to 1 024 of them (they go in every authorization URL and token request).
_CREDENTIAL = re.compile(r"[\x20-\x7e]{1,1024}")
#: RFC 7591 §3.2.1 ``client_secret_expires_at`` past this (the year 9999) never comes.
_LAST_SECOND = 253_402_300_799


class RegistrationFailed(Exception):
    """No client: the server refused (RFC 7591 §3.2.2) or could not be asked."""


async def register(
    http: HTTPClient,
    clock: Clock,
    *,
    backend: str,
    issuer: str,
    endpoint: str,
    redirect_uri: str,
    scope: tuple[str, ...],
    time_limit: float,
) -> RegisteredClient:
    """POST the client metadata (RFC 7591 §2, §3.1) and read the client (§3.2.1)."""
    metadata: dict[str, object] = {
        "client_name": CLIENT_NAME,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    if scope:
        metadata["scope"] = " ".join(scope)
    try:
        got = await fetch(
            http,
            clock,
            "POST",
            endpoint,
            timeout=time_limit,
            max_bytes=MAX_RESPONSE_BYTES,
            data=json.dumps(metadata).encode(),
            headers={"Content-Type": ["application/json"], "Accept": ["application/json"]},
        )
        answer = parse_json_object(got.body, endpoint)
    except FetchFailed as error:
        raise RegistrationFailed(f"registration at {endpoint}: {error}") from None
    if got.status not in (200, 201):
        code = answer.get("error")
        said = f": {excerpt(code)}" if isinstance(code, str) else ""
        raise RegistrationFailed(f"{endpoint} refused the registration (HTTP {got.status}{said})")
    client_id = answer.get("client_id")
    if not isinstance(client_id, str) or not _CREDENTIAL.fullmatch(client_id):
        raise RegistrationFailed(f"{endpoint} answered no usable client_id")
    secret = answer.get("client_secret")
    if (
        secret is not None
        and secret != ""
        and not (isinstance(secret, str) and _CREDENTIAL.fullmatch(secret))
    ):
        raise RegistrationFailed(f"{endpoint} answered no usable client_secret")
    return RegisteredClient(
        backend=backend,
        issuer=issuer,
        client_id=client_id,
        client_secret=secret or None,
        client_secret_expires_at=_expires_at(answer.get("client_secret_expires_at")),
        registered_at=clock.seconds(),
    )


def _expires_at(value: object) -> float | None:
    """RFC 7591 §3.2.1: when the secret expires, 0 for never; None (never) too for what
    is no time in seconds (a boolean, a string, negative, NaN, past the year 9999)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value <= _LAST_SECOND else None
