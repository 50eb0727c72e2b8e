"""Access tokens from the test authorization server, the way a public client gets them.

For tests and tools that drive aigw with raw HTTP rather than an SDK client: a
dynamic registration (RFC 7591), the authorization code flow with PKCE (RFC 7636)
and ``resource`` (RFC 8707), the user logged in headlessly (:mod:`.login`), and the
code traded for a JWT access token whose ``aud`` is ``resource``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

import httpx2

from .authserver import AuthServer
from .login import authorize

#: Never contacted: the headless login stops at the redirect to it.
REDIRECT_URI = "http://127.0.0.1:9/callback"


async def token_for(
    auth_server: AuthServer, user: str, resource: str, scope: str, password: str | None = None
) -> str:
    """Register a client and run the code flow with PKCE by hand; return the access token.

    ``password`` defaults to the one the authorization server was started with."""
    token, _ = await grant_for(auth_server, user, resource, scope, password)
    return token


async def grant_for(
    auth_server: AuthServer, user: str, resource: str, scope: str, password: str | None = None
) -> tuple[str, str]:
    """``token_for``'s access token, and the id of the public client it was issued to
    (which may revoke it, RFC 7009 section 2.1)."""
    async with httpx2.AsyncClient(timeout=10) as http:
        registration = await http.post(
            f"{auth_server.issuer}/reg",
            json={
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            },
        )
        registration.raise_for_status()
        client_id = registration.json()["client_id"]
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        query = httpx2.QueryParams(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT_URI,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": "s",
                "scope": scope,
                "resource": resource,
            }
        )
        answer = await authorize(
            f"{auth_server.issuer}/auth?{query}",
            user,
            password if password is not None else auth_server.users.get(user),
        )
        response = await http.post(
            auth_server.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": answer.code,
                "client_id": client_id,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "resource": resource,
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"]), client_id
