"""``make keycloak-check KC=http://localhost:8080``: aigw against a real Keycloak.

For people who have a Keycloak (this project's machines cannot download it). With admin
credentials from ``KC_ADMIN`` / ``KC_ADMIN_PASSWORD`` (default ``admin``/``admin``) it
configures a realm ``aigw-check`` through the admin REST API the way README.md ("Keycloak")
says, starts a local MCP server and aigw (``etc/aigw/examples/keycloak.yaml``'s ``auth``
section, issuer ``<KC>/realms/aigw-check``) on 127.0.0.1, runs the official Python SDK
client through the OAuth flow with a headless login at Keycloak's own login and consent
pages, prints a summary, and deletes the realm. Exit status 0 when every step passed.

The realm:

* client scope ``mcp:tools`` (OpenID Connect, in the token scope) with an Audience mapper
  (``oidc-audience-mapper``, ``included.custom.audience`` = aigw's resource URL);
* anonymous client registration policies: *Trusted Hosts* deleted, *Allowed Client Scopes*
  (``allowed-client-templates``) allowing ``mcp:tools``;
* access token lifespan 600 s; a user ``aigw-check`` with a password.

The request building is unit-tested against a fake admin API
(``tests/unit/test_keycloak_check.py``); the whole has not been run here.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import secrets
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2

REALM = "aigw-check"
USER = "aigw-check"
POLICY_TYPE = "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy"
EXAMPLE = Path(__file__).resolve().parents[1] / "etc" / "aigw" / "examples" / "keycloak.yaml"


class CheckFailed(RuntimeError):
    pass


def _ok(response: httpx2.Response, what: str) -> httpx2.Response:
    if response.status_code >= 400:
        raise CheckFailed(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response


@dataclass
class AdminAPI:
    """Keycloak's admin REST API (``/admin/realms``), logged in through ``admin-cli``."""

    base: str
    http: httpx2.Client
    token: str = ""

    def login(self, username: str, password: str) -> None:
        response = self.http.post(
            f"{self.base}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": username,
                "password": password,
            },
        )
        self.token = str(_ok(response, "admin login").json()["access_token"])

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return _ok(
            self.http.request(method, f"{self.base}/admin{path}", headers=headers, **kwargs), what
        )

    def configure_realm(self, realm: str, audience: str, password: str) -> str:
        """Create ``realm`` as README.md says; return the test user's id (its ``sub``)."""
        self._call(
            "POST",
            "/realms",
            "create realm",
            json={"realm": realm, "enabled": True, "accessTokenLifespan": 600},
        )
        self._call(
            "POST",
            f"/realms/{realm}/client-scopes",
            "create client scope mcp:tools",
            json={
                "name": "mcp:tools",
                "protocol": "openid-connect",
                "attributes": {
                    "include.in.token.scope": "true",
                    "display.on.consent.screen": "true",
                },
                "protocolMappers": [
                    {
                        "name": "aigw audience",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {
                            "included.custom.audience": audience,
                            "access.token.claim": "true",
                            "id.token.claim": "false",
                            "introspection.token.claim": "true",
                        },
                    }
                ],
            },
        )
        policies = self._call(
            "GET",
            f"/realms/{realm}/components",
            "list registration policies",
            params={"type": POLICY_TYPE},
        ).json()
        for policy in policies:
            if policy.get("subType") != "anonymous":
                continue
            if policy.get("providerId") == "trusted-hosts":
                self._call(
                    "DELETE",
                    f"/realms/{realm}/components/{policy['id']}",
                    "delete Trusted Hosts policy",
                )
            elif policy.get("providerId") == "allowed-client-templates":
                config = dict(policy.get("config") or {})
                config["allowed-client-scopes"] = ["mcp:tools"]
                self._call(
                    "PUT",
                    f"/realms/{realm}/components/{policy['id']}",
                    "allow mcp:tools in Allowed Client Scopes",
                    json={**policy, "config": config},
                )
        self._call(
            "POST",
            f"/realms/{realm}/users",
            "create user",
            json={
                "username": USER,
                "enabled": True,
                "email": f"{USER}@example.test",
                "emailVerified": True,
                "firstName": "aigw",
                "lastName": "check",
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            },
        )
        users = self._call(
            "GET",
            f"/realms/{realm}/users",
            "find user",
            params={"username": USER, "exact": "true"},
        ).json()
        return str(users[0]["id"])

    def delete_realm(self, realm: str) -> None:
        self._call("DELETE", f"/realms/{realm}", "delete realm")


_FORM = re.compile(r"<form\b[^>]*\baction=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r"(\w[\w-]*)=\"([^\"]*)\"")


def form_of(page: str) -> tuple[str, dict[str, str]]:
    """The first form of a Keycloak page: its action and its hidden/default fields."""
    match = _FORM.search(page)
    if match is None:
        raise CheckFailed(f"no form in page: {page[:300]}")
    fields: dict[str, str] = {}
    for tag in _INPUT.findall(match.group(2)):
        attrs = {k.lower(): html.unescape(v) for k, v in _ATTR.findall(tag)}
        if "name" in attrs and attrs.get("type", "text") in ("hidden", "text"):
            fields[attrs["name"]] = attrs.get("value", "")
    return html.unescape(match.group(1)), fields


async def keycloak_login(authorization_url: str, username: str, password: str) -> dict[str, str]:
    """Log in at Keycloak's login page, accept its consent page; the redirect's query."""
    redirect_uri = parse_qs(urlsplit(authorization_url).query)["redirect_uri"][0]
    async with httpx2.AsyncClient(follow_redirects=False, timeout=20) as http:
        response = await http.get(authorization_url)
        for _ in range(10):
            if response.status_code in (302, 303):
                location = urljoin(str(response.request.url), response.headers["location"])
                if location.startswith(redirect_uri):
                    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
                response = await http.get(location)
                continue
            if response.status_code != 200:
                raise CheckFailed(f"login: HTTP {response.status_code} {response.text[:300]}")
            action, fields = form_of(response.text)
            if 'name="password"' in response.text:
                fields.update(username=username, password=password)
            else:  # the consent page ("Consent Required" registration policy)
                fields["accept"] = "Yes"
            response = await http.post(urljoin(str(response.request.url), action), data=fields)
        raise CheckFailed("login: too many steps")


@dataclass
class Summary:
    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, step: str, ok: bool, detail: str = "") -> None:
        self.steps.append((step, ok, detail))
        print(f"{'ok  ' if ok else 'FAIL'} {step}{': ' + detail if detail else ''}", flush=True)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(ok for _, ok, _ in self.steps)


async def run_flow(gateway_url: str, password: str, sub: str, summary: Summary) -> None:
    import jwt
    from mcp.shared.auth import AuthorizationCodeResult

    from tests.e2e.harness.oauth_client import HeadlessLogin, MemoryTokenStorage, connect
    from tests.e2e.harness.results import text_of

    class KeycloakLogin(HeadlessLogin):
        async def redirect_handler(self, authorization_url: str) -> None:
            self.authorization_urls.append(authorization_url)
            query = await keycloak_login(authorization_url, self.user, password)
            if "code" not in query:
                raise CheckFailed(f"authorization error: {query}")
            self._pending = AuthorizationCodeResult(
                code=query["code"], state=query.get("state"), iss=query.get("iss")
            )

    storage = MemoryTokenStorage()
    login = KeycloakLogin(USER, password)
    async with connect(gateway_url, USER, password, storage=storage, login=login) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        summary.add("SDK: registration, login, consent, token, tools/list", "py__echo" in tools)
        result = await client.call_tool("py__echo", {"text": "keycloak-check"})
        summary.add("tools/call py__echo", text_of(result) == "keycloak-check")
    assert storage.tokens is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    summary.add(
        "token aud is aigw's resource URL", claims.get("aud") in (gateway_url, [gateway_url])
    )
    summary.add("token sub is the user's id", claims.get("sub") == sub, str(claims.get("sub")))
    summary.add(
        "token typ/azp",
        jwt.get_unverified_header(storage.tokens.access_token).get("typ") == "JWT"
        and "azp" in claims,
    )


def gateway_config(issuer: str, port: int, backend: str, directory: str, **more: Any) -> str:
    """``keycloak.yaml`` with this issuer, port and backend (and ``more`` top-level keys),
    a new session key beside it, metrics off; written in ``directory``, its path."""
    import yaml

    from tests.e2e.aigw import write_session_key

    with open(EXAMPLE) as handle:
        config: dict[str, Any] = yaml.safe_load(handle)
    config.update(
        listen=[f"tcp:{port}:interface=127.0.0.1"],
        public_url=f"http://127.0.0.1:{port}",
        backends=[{"name": "py", "url": backend, "timeout": "20s"}],
        sessions={"secret_file": write_session_key(directory)},
        metrics=False,  # `off`; the default port is one for every gateway
        **more,
    )
    config["auth"]["issuer"] = issuer
    path = os.path.join(directory, "aigw.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(config, handle)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.keycloak_check")
    parser.add_argument("kc", help="Keycloak's base URL, e.g. http://localhost:8080")
    args = parser.parse_args(argv)
    from tests.e2e.aigw import run_gateway
    from tests.e2e.harness.processes import LOG_DIR, free_port
    from tests.e2e.harness.upstreams import start_pyserver

    base = args.kc.rstrip("/")
    summary = Summary()
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}/mcp"
    password = secrets.token_urlsafe(16)
    admin = AdminAPI(base, httpx2.Client(timeout=30))
    try:
        admin.login(
            os.environ.get("KC_ADMIN", "admin"), os.environ.get("KC_ADMIN_PASSWORD", "admin")
        )
    except (CheckFailed, httpx2.HTTPError) as error:
        print(f"FAIL admin login at {base}: {error}")
        return 1
    stops: list[Any] = []
    try:
        sub = admin.configure_realm(REALM, gateway_url, password)
        summary.add(f"realm {REALM} configured", True, f"user {USER} = {sub}")
        upstream = start_pyserver()
        stops.append(upstream.stop)
        directory = tempfile.mkdtemp(prefix="aigw-kc-check-", dir=LOG_DIR)
        path = gateway_config(f"{base}/realms/{REALM}", port, upstream.url, directory)
        stops.append(run_gateway(path, port).stop)
        asyncio.run(run_flow(gateway_url, password, sub, summary))
    except Exception as error:  # a summary line, not a traceback, for the person running it
        summary.add("flow", False, f"{type(error).__name__}: {error}")
    finally:
        for stop in reversed(stops):
            stop()
        try:
            admin.delete_realm(REALM)
            summary.add(f"realm {REALM} deleted", True)
        except (CheckFailed, httpx2.HTTPError) as error:
            summary.add(f"realm {REALM} deleted", False, str(error))
    print("keycloak-check:", "PASSED" if summary.ok else "FAILED")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
