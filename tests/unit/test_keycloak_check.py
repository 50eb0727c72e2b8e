"""``make keycloak-check`` (tests/keycloak_check.py) against a fake Keycloak admin API.

No Keycloak here: these tests check the admin REST requests the check sends (paths,
bodies) and its reading of Keycloak's login and consent forms.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
from twisted.trial.unittest import SynchronousTestCase

from tests.keycloak_check import POLICY_TYPE, AdminAPI, form_of

AUDIENCE = "http://127.0.0.1:1975/mcp"


class FakeAdmin:
    """Records requests; answers like Keycloak's admin API for a fresh realm."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body: Any = None
        if request.content:
            text = request.content.decode()
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        self.requests.append((request.method, request.url.path, body))
        path = request.url.path
        if path == "/realms/master/protocol/openid-connect/token":
            return httpx2.Response(200, json={"access_token": "admin-token"})
        assert request.headers["authorization"] == "Bearer admin-token"
        if request.method == "GET" and path.endswith("/components"):
            assert request.url.params["type"] == POLICY_TYPE
            return httpx2.Response(
                200,
                json=[
                    {"id": "th", "providerId": "trusted-hosts", "subType": "anonymous"},
                    {
                        "id": "acs",
                        "name": "Allowed Client Scopes",
                        "providerId": "allowed-client-templates",
                        "subType": "anonymous",
                        "config": {"allow-default-scopes": ["true"]},
                    },
                    {
                        "id": "acs2",
                        "providerId": "allowed-client-templates",
                        "subType": "authenticated",
                    },
                ],
            )
        if request.method == "GET" and path.endswith("/users"):
            return httpx2.Response(200, json=[{"id": "0b5e0a7e-uuid", "username": "aigw-check"}])
        return httpx2.Response(201 if request.method == "POST" else 204)


class AdminRequestsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.fake = FakeAdmin()
        self.api = AdminAPI(
            "http://kc:8080", httpx2.Client(transport=httpx2.MockTransport(self.fake))
        )
        self.api.login("admin", "pw")
        self.sub = self.api.configure_realm("aigw-check", AUDIENCE, "user-pw")

    def test_login_uses_admin_cli_password_grant(self) -> None:
        method, path, body = self.fake.requests[0]
        self.assertEqual((method, path), ("POST", "/realms/master/protocol/openid-connect/token"))
        self.assertIn("grant_type=password", body)
        self.assertIn("client_id=admin-cli", body)

    def test_realm_with_ten_minute_tokens(self) -> None:
        self.assertIn(
            (
                "POST",
                "/admin/realms",
                {"realm": "aigw-check", "enabled": True, "accessTokenLifespan": 600},
            ),
            self.fake.requests,
        )

    def test_client_scope_with_audience_mapper(self) -> None:
        [scope] = [b for m, p, b in self.fake.requests if p.endswith("/client-scopes")]
        self.assertEqual(scope["name"], "mcp:tools")
        self.assertEqual(scope["attributes"]["include.in.token.scope"], "true")
        [mapper] = scope["protocolMappers"]
        self.assertEqual(mapper["protocolMapper"], "oidc-audience-mapper")
        self.assertEqual(mapper["config"]["included.custom.audience"], AUDIENCE)
        self.assertEqual(mapper["config"]["access.token.claim"], "true")

    def test_registration_policies(self) -> None:
        calls = [(m, p) for m, p, _ in self.fake.requests]
        self.assertIn(("DELETE", "/admin/realms/aigw-check/components/th"), calls)
        [put] = [b for m, p, b in self.fake.requests if m == "PUT"]
        self.assertEqual(put["id"], "acs")
        self.assertEqual(put["config"]["allowed-client-scopes"], ["mcp:tools"])
        self.assertEqual(put["config"]["allow-default-scopes"], ["true"])
        self.assertNotIn(("PUT", "/admin/realms/aigw-check/components/acs2"), calls)

    def test_user_with_permanent_password(self) -> None:
        [user] = [b for m, p, b in self.fake.requests if m == "POST" and p.endswith("/users")]
        self.assertEqual(user["username"], "aigw-check")
        self.assertEqual(
            user["credentials"], [{"type": "password", "value": "user-pw", "temporary": False}]
        )
        self.assertEqual(self.sub, "0b5e0a7e-uuid")

    def test_delete_realm(self) -> None:
        self.api.delete_realm("aigw-check")
        self.assertEqual(self.fake.requests[-1][:2], ("DELETE", "/admin/realms/aigw-check"))


class FormTests(SynchronousTestCase):
    def test_login_form(self) -> None:
        page = (
            '<form id="kc-form-login" action="http://kc/realms/r/login-actions/authenticate'
            '?session_code=a&amp;execution=b" method="post">'
            '<input id="username" name="username" value="" type="text">'
            '<input id="password" name="password" type="password">'
            '<input type="hidden" id="id-hidden-input" name="credentialId"></form>'
        )
        action, fields = form_of(page)
        self.assertEqual(
            action, "http://kc/realms/r/login-actions/authenticate?session_code=a&execution=b"
        )
        self.assertEqual(fields, {"username": "", "credentialId": ""})

    def test_consent_form_keeps_its_code(self) -> None:
        page = (
            '<form class="form-actions" action="/realms/r/login-actions/consent?client_id=c"'
            ' method="POST"><input type="hidden" name="code" value="xyz">'
            '<input name="accept" id="kc-login" type="submit" value="Yes"></form>'
        )
        action, fields = form_of(page)
        self.assertEqual(action, "/realms/r/login-actions/consent?client_id=c")
        self.assertEqual(fields, {"code": "xyz"})
