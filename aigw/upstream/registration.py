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

from aigw.httpjson import Clock, FetchFailed, HTTPClient, fetch, parse_json_object
from aigw.store.api import RegisteredClient

MAX_RESPONSE_BYTES = 64 * 1024
CLIENT_NAME = "aigw"


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
        said = f": {code}" if isinstance(code, str) else ""
        raise RegistrationFailed(f"{endpoint} refused the registration (HTTP {got.status}{said})")
    client_id = answer.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise RegistrationFailed(f"{endpoint} answered no client_id")
    secret = answer.get("client_secret")
    expires = answer.get("client_secret_expires_at")
    return RegisteredClient(
        backend=backend,
        issuer=issuer,
        client_id=client_id,
        client_secret=secret if isinstance(secret, str) and secret else None,
        client_secret_expires_at=float(expires)
        if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0
        else None,
        registered_at=clock.seconds(),
    )
