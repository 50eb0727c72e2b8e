"""A backend that does OAuth itself and its authorization server, as scripted answers
(``ScriptedHTTP``): what ``auth.user_oauth`` talks to, for the unit tests."""

from __future__ import annotations

from typing import Any

import attrs
import jwt
from twisted.internet.defer import Deferred, fail, succeed

from aigw.auth.errors import TokenRejected
from aigw.principal import Principal
from tests.fakes import ScriptedHTTP, ScriptedRequest
from tests.unit.auth.helpers import RSA_KEY

RESOURCE = "https://crm.example/mcp"
PRM = "https://crm.example/.well-known/oauth-protected-resource/mcp"
AS = "https://as.example"
PUBLIC = "https://gw.example"
ALICE = Principal(AS + "/aigw", "alice", "cli", frozenset(), {}, None, None)
BOB = attrs.evolve(ALICE, subject="bob")
#: aigw's own issuer (``auth.issuer``), where the browser logs in before the backend.
AIGW_AS = ALICE.issuer
LOGIN_CLIENT_ID = "aigw-login"


class LoginKeys:
    """The key source of aigw's issuer: the one RSA key ``k1`` that signs ID tokens."""

    def get_key(self, kid: str | None, alg: str) -> Deferred[Any]:
        if kid == "k1" and alg == "RS256":
            return succeed(RSA_KEY.public_key())
        return fail(TokenRejected("unknown_key", "the issuer does not list this key"))


class Backend:
    """The backend and its authorization server, as scripted answers; what they saw."""

    def __init__(self) -> None:
        self.challenge = f'Bearer error="invalid_token", resource_metadata="{PRM}"'
        self.resource_document: dict[str, Any] = {
            "resource": RESOURCE,
            "authorization_servers": [AS],
            "scopes_supported": ["crm"],
        }
        self.metadata: dict[str, Any] = {
            "issuer": AS,
            "authorization_endpoint": AS + "/auth",
            "token_endpoint": AS + "/token",
            "registration_endpoint": AS + "/reg",
            "code_challenge_methods_supported": ["S256"],
        }
        self.issued = 0
        #: Who logs in at aigw's issuer, the nonce the ID token echoes, claims overridden.
        self.login_sub = "alice"
        self.login_nonce: str | None = None
        self.login_claims: dict[str, Any] = {}
        self.refresh_answer: tuple[int, Any] | None = None
        self.http = ScriptedHTTP()
        self.http.auto = self.answer

    def answer(self, request: ScriptedRequest) -> tuple[Any, ...]:
        url = request.url
        if url == RESOURCE:
            return 401, b"", {"WWW-Authenticate": self.challenge}
        if url in (PRM, "https://crm.example/.well-known/oauth-protected-resource"):
            return 200, self.resource_document
        if url == AS + "/.well-known/oauth-authorization-server":
            return 200, self.metadata
        if url == AS + "/.well-known/oauth-authorization-server/aigw":
            return 200, {
                "issuer": AIGW_AS,
                "authorization_endpoint": AIGW_AS + "/auth",
                "token_endpoint": AIGW_AS + "/token",
                "registration_endpoint": AIGW_AS + "/reg",
            }
        if url == AIGW_AS + "/reg":
            return 201, {"client_id": LOGIN_CLIENT_ID, "client_secret": "ls"}
        if url == AIGW_AS + "/token":
            return 200, {"access_token": "l", "token_type": "Bearer", "id_token": self.id_token()}
        if url == AS + "/reg":
            return 201, {"client_id": f"reg-{len(self.sent(AS + '/reg'))}", "client_secret": "rs"}
        if url == AS + "/token":
            form = request.form
            if form["grant_type"] == "refresh_token" and self.refresh_answer is not None:
                return self.refresh_answer
            self.issued += 1
            return 200, {
                "access_token": f"at-{self.issued}",
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": f"rt-{self.issued}",
            }
        return 404, {}

    def id_token(self) -> str:
        claims = {
            "iss": AIGW_AS,
            "sub": self.login_sub,
            "aud": LOGIN_CLIENT_ID,
            "nonce": self.login_nonce,
            "iat": 1_000_000,
            "exp": 2_000_000,
            **self.login_claims,
        }
        return jwt.encode(claims, RSA_KEY, "RS256", headers={"kid": "k1"})

    def sent(self, url: str) -> list[ScriptedRequest]:
        return [r for r in self.http.requests if r.url == url]
