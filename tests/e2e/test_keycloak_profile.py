"""aigw with Keycloak, as far as it can be checked without Keycloak.

The authorization server is ``e2e/as.mjs --profile keycloak``: issuer ``.../realms/<realm>``,
Keycloak's endpoint paths and metadata locations, ``typ: JWT`` access tokens with ``azp``
and a UUID ``sub``, ``aud`` from an audience mapper on the client scope ``mcp:tools``
(the ``resource`` parameter ignored), the "Allowed Client Scopes" and "Consent Required"
anonymous registration policies, a ``no-cache`` JWKS. aigw runs with the ``auth`` section of
``etc/aigw/examples/keycloak.yaml`` (only the issuer and the ports differ), and the official
Python SDK client goes through the whole OAuth flow. See README.md, "Keycloak".
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import httpx2
import jwt
import pytest

from tests.keycloak_check import gateway_config as keycloak_config

from .aigw import Gateway, run_gateway
from .harness.authserver import AuthServer, start_auth_server
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.processes import LOG_DIR, free_port
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ALICE = "0b5e0a7e-6c1d-4a52-9d8e-2f1c3a4b5c6d"
BOB = "7d3f1e2a-1b2c-4d3e-8f4a-5b6c7d8e9f0a"
CHECK = "5a4b3c2d-1e0f-4a1b-9c2d-3e4f5a6b7c8d"
USERS = {
    "alice": {"password": "alice-password", "scopes": ["mcp:tools"], "id": ALICE},
    "bob": {"password": "bob-password", "scopes": ["mcp:tools"], "id": BOB},
    # The user `make keycloak-check` creates in its realm.
    "aigw-check": {"password": "check-password", "scopes": ["mcp:tools"], "id": CHECK},
}


def gateway_config(issuer: str, port: int, backend: str, directory: str) -> str:
    """``make keycloak-check``'s config of ``keycloak.yaml``, with a rule keyed on ``sub``
    and debug logs."""
    return keycloak_config(
        issuer,
        port,
        backend,
        directory,
        # Registered clients' tokens carry no preferred_username: rules name users by `sub`.
        access={
            "default": "allow",
            "rules": [{"effect": "deny", "subjects": [BOB], "backends": ["py"]}],
        },
        logging={"format": "text", "level": "debug"},
    )


@pytest.fixture(scope="module")
def stack(node_modules: None, pyserver: Upstream) -> Iterator[tuple[AuthServer, Gateway]]:
    port = free_port()
    auth = start_auth_server(
        profile="keycloak",
        realm="aigw",
        kc_audience=f"http://127.0.0.1:{port}/mcp",
        users=USERS,
        test_control=False,
    )
    try:
        directory = tempfile.mkdtemp(prefix="aigw-kc-", dir=LOG_DIR)
        path = gateway_config(auth.issuer, port, pyserver.url, directory)
        gateway = run_gateway(path, port)
        try:
            yield auth, gateway
        finally:
            gateway.stop()
    finally:
        auth.stop()


def test_metadata_where_keycloak_serves_it(stack: tuple[AuthServer, Gateway]) -> None:
    """Keycloak 26.4+ serves RFC 8414's path-inserted location for oauth-authorization-server
    only (keycloak#40923, #45271), and OIDC's location under the realm."""
    auth, _ = stack
    base = f"http://127.0.0.1:{auth.port}"
    assert auth.issuer == f"{base}/realms/aigw"
    rfc8414 = httpx2.get(f"{base}/.well-known/oauth-authorization-server/realms/aigw")
    oidc = httpx2.get(f"{auth.issuer}/.well-known/openid-configuration")
    assert rfc8414.status_code == oidc.status_code == 200
    assert rfc8414.json()["issuer"] == oidc.json()["issuer"] == auth.issuer
    assert httpx2.get(f"{base}/.well-known/openid-configuration/realms/aigw").status_code == 404
    assert oidc.json()["jwks_uri"] == auth.jwks_uri
    assert httpx2.get(auth.jwks_uri).headers["cache-control"] == "no-cache"


def test_aigw_advertises_mcp_tools_only(stack: tuple[AuthServer, Gateway]) -> None:
    """What the SDK registers with comes from here: `openid` would meet the policy's 403."""
    auth, gateway = stack
    prm = httpx2.get(f"{gateway.base}/.well-known/oauth-protected-resource/mcp").json()
    assert prm["scopes_supported"] == ["mcp:tools"]
    assert prm["authorization_servers"] == [auth.issuer]


def test_registration_outside_allowed_client_scopes_is_refused(
    stack: tuple[AuthServer, Gateway],
) -> None:
    """Keycloak's "Allowed Client Scopes" policy: 403 insufficient_scope for `openid`."""
    auth, _ = stack
    body = {
        "redirect_uris": ["http://127.0.0.1:9/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    refused = httpx2.post(auth.registration_endpoint, json={**body, "scope": "openid mcp:tools"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    assert "Allowed Client Scopes" in refused.json()["error_description"]
    # What the SDK sends when aigw advertises mcp:tools only (plus offline_access, which
    # Keycloak advertises and allows as a realm optional client scope).
    allowed = httpx2.post(
        auth.registration_endpoint, json={**body, "scope": "mcp:tools offline_access"}
    )
    assert allowed.status_code == 201, allowed.text


async def test_sdk_flow_and_keycloak_shaped_token(stack: tuple[AuthServer, Gateway]) -> None:
    """401 → PRM → AS metadata (realm path) → DCR → login → consent → token → tools."""
    auth, gateway = stack
    storage = MemoryTokenStorage()
    async with connect(gateway.url, "alice", "alice-password", storage=storage) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "py__echo" in names
        result = await client.call_tool("py__echo", {"text": "through Keycloak"})
        assert text_of(result) == "through Keycloak"
    assert storage.tokens is not None
    token = storage.tokens.access_token
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["typ"] == "JWT"
    assert claims["iss"] == auth.issuer
    assert claims["aud"] == gateway.url  # the audience mapper, not `resource`
    assert claims["sub"] == ALICE
    assert "azp" in claims
    assert "client_id" not in claims
    assert "mcp:tools" in claims["scope"].split(" ")
    assert "preferred_username" not in claims


async def test_access_rule_keyed_on_sub(stack: tuple[AuthServer, Gateway]) -> None:
    _, gateway = stack
    async with connect(gateway.url, "bob", "bob-password") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "py__echo" not in names


async def test_keycloak_before_26_4_without_rfc8414_location(
    node_modules: None, pyserver: Upstream
) -> None:
    """Keycloak before 26.4 has no path-inserted RFC 8414 metadata: aigw and the SDK fall
    back to the OpenID location under the realm."""
    port = free_port()
    auth = start_auth_server(
        profile="keycloak",
        kc_audience=f"http://127.0.0.1:{port}/mcp",
        users=USERS,
        test_control=False,
        kc_rfc8414=False,
    )
    try:
        base = f"http://127.0.0.1:{auth.port}"
        missing = httpx2.get(f"{base}/.well-known/oauth-authorization-server/realms/aigw")
        assert missing.status_code == 404
        directory = tempfile.mkdtemp(prefix="aigw-kc-", dir=LOG_DIR)
        path = gateway_config(auth.issuer, port, pyserver.url, directory)
        gateway = run_gateway(path, port)
        try:
            async with connect(gateway.url, "alice", "alice-password") as client:
                result = await client.call_tool("py__echo", {"text": "older Keycloak"})
                assert text_of(result) == "older Keycloak"
        finally:
            gateway.stop()
    finally:
        auth.stop()


async def test_keycloak_check_flow_through_the_profile(stack: tuple[AuthServer, Gateway]) -> None:
    """``make keycloak-check``'s flow (its form-reading login and consent, its token checks)
    against this profile: everything of it but Keycloak's admin API."""
    from tests.keycloak_check import Summary, run_flow

    _, gateway = stack
    summary = Summary()
    await run_flow(gateway.url, "check-password", CHECK, summary)
    assert summary.ok, summary.steps
    assert len(summary.steps) == 5
