"""A backend that does OAuth itself and its authorization server, as scripted answers
(``ScriptedHTTP``): what ``auth.user_oauth`` talks to, for the unit tests."""

from __future__ import annotations

from typing import Any

import attrs

from aigw.principal import Principal
from tests.fakes import ScriptedHTTP, ScriptedRequest

RESOURCE = "https://crm.example/mcp"
PRM = "https://crm.example/.well-known/oauth-protected-resource/mcp"
AS = "https://as.example"
PUBLIC = "https://gw.example"
ALICE = Principal(AS + "/aigw", "alice", "cli", frozenset(), {}, None, None)
BOB = attrs.evolve(ALICE, subject="bob")


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

    def sent(self, url: str) -> list[ScriptedRequest]:
        return [r for r in self.http.requests if r.url == url]
