"""aigw as the OAuth 2.1 resource server, end to end through real parts.

Authorization server: oidc-provider (``e2e/as.mjs``); client: the official MCP
Python SDK with ``OAuthClientProvider``; upstream: a server written with the
``mcp`` SDK. Each test names the MCP Authorization (2025-11-25) or RFC rule.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anyio
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from .aigw import INITIALIZE, MCP_HEADERS, Gateway, mcp_post, start_gateway
from .harness.authserver import AuthServer, start_auth_server
from .harness.oauth_client import HeadlessLogin, MemoryTokenStorage, connect
from .harness.results import text_of
from .harness.tokens import token_for
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

#: ``auth.shared_secret`` of this module's gateway (HS256; RFC 7518 §3.2: at least as
#: long as the hash, 32 bytes).
SHARED_SECRET = "e2e-shared-secret-of-thirty-two-bytes-or-more"
#: ``allowed_origins`` of this module's gateway (the MCP Inspector's origin).
INSPECTOR = "http://localhost:6274"


@pytest.fixture(scope="module")
def gateway(auth_server: AuthServer, pyserver: Upstream) -> Iterator[Gateway]:
    """The issuer's RS256 tokens, and HS256 ones signed with ``SHARED_SECRET``."""
    symmetric = f"shared_secret: {SHARED_SECRET}\nalgorithms: [RS256, HS256]\n"
    started = start_gateway(
        [("py", pyserver.url)],
        issuer=auth_server.issuer,
        auth_extra=symmetric,
        extra=f"allowed_origins: ['{INSPECTOR}']\n",
    )
    try:
        yield started
    finally:
        started.stop()


async def test_sdk_goes_from_bare_401_to_a_tool_result(gateway: Gateway) -> None:
    """MCP Authorization "Authorization Flow Steps".

    401 → PRM → AS metadata → DCR → PKCE → token → call.
    """
    async with connect(gateway.url, "alice", mode="legacy") as client:
        tools = await client.list_tools()
        names = {tool.name for tool in tools.tools}
        assert "py__echo" in names
        result = await client.call_tool("py__echo", {"text": "through aigw"})
        assert text_of(result) == "through aigw"


def test_bare_request_gets_401_with_resource_metadata(gateway: Gateway) -> None:
    """RFC 9728 §5.1 and MCP Authorization: the challenge names the metadata URL and scopes."""
    response = mcp_post(gateway, None)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert (
        f'resource_metadata="{gateway.base}/.well-known/oauth-protected-resource/mcp"' in challenge
    )
    assert 'scope="mcp:tools"' in challenge
    metadata = httpx2.get(
        f"{gateway.base}/.well-known/oauth-protected-resource/mcp", timeout=10
    ).json()
    assert metadata["resource"] == gateway.url
    assert metadata["authorization_servers"] == [
        json.loads(json.dumps(metadata["authorization_servers"]))[0]
    ]
    assert metadata["bearer_methods_supported"] == ["header"]


def test_token_in_query_string_is_refused(gateway: Gateway) -> None:
    """MCP Authorization "Token Requirements": never in the URI query string."""
    response = httpx2.post(
        gateway.url + "?access_token=abc",
        json={},
        headers={"Accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_token_for_another_resource_is_invalid_token(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    """RFC 8707 §2 / MCP "Token Audience Binding": aud must be this gateway."""
    token = await token_for(
        auth_server, "alice", "http://127.0.0.1:9/other", "mcp:tools tools:call"
    )
    response = mcp_post(gateway, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_token_without_the_required_scope_gets_403(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    """RFC 6750 §3.1 insufficient_scope, with the scopes the operation needs."""
    token = await token_for(auth_server, "alice", gateway.url, "tools:call")
    response = mcp_post(gateway, token)
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert "mcp:tools" in challenge


async def test_client_token_is_never_forwarded_upstream(gateway: Gateway) -> None:
    """MCP Authorization "Access Token Privilege Restriction": no token passthrough."""
    async with connect(gateway.url, "alice", mode="legacy") as client:
        result = await client.call_tool("py__whoami-headers", {})
        headers = {k.lower() for k in json.loads(text_of(result))}
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert "proxy-authorization" not in headers


def test_unknown_key_is_refused(gateway: Gateway, auth_server: AuthServer) -> None:
    """RFC 8725 §3.1: only the issuer's keys; a token signed by anyone else fails closed."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": auth_server.issuer,
            "aud": gateway.url,
            "sub": "mallory",
            "exp": now + 300,
            "iat": now,
            "scope": "mcp:tools tools:call",
        },
        key,
        algorithm="RS256",
        headers={"kid": "not-a-real-kid"},
    )
    response = mcp_post(gateway, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_key_rotation_is_followed(gateway: Gateway, auth_server: AuthServer) -> None:
    """A new kid at the AS: aigw refetches the JWKS on the unknown kid and accepts the token."""
    auth_server.rotate_keys(keep_old=False)
    await anyio.sleep(1.1)  # past the unknown-kid cooldown of this gateway's config
    async with connect(gateway.url, "alice", mode="legacy") as client:
        result = await client.call_tool("py__echo", {"text": "rotated"})
        assert text_of(result) == "rotated"


async def test_authorization_server_down_keeps_cached_keys(pyserver: Upstream) -> None:
    """Last good keys are kept while the AS is down; only unknown kids fail, closed."""
    server = start_auth_server(test_control=True)
    gateway = start_gateway([("py", pyserver.url)], issuer=server.issuer)
    try:
        token = await token_for(server, "alice", gateway.url, "mcp:tools tools:call")
        assert mcp_post(gateway, token).status_code == 200
        server.stop()
        assert mcp_post(gateway, token).status_code == 200
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(
            {
                "iss": server.issuer,
                "aud": gateway.url,
                "sub": "x",
                "exp": int(time.time()) + 60,
                "scope": "mcp:tools",
            },
            key,
            algorithm="RS256",
            headers={"kid": "other"},
        )
        refused = mcp_post(gateway, forged)
        assert refused.status_code in (401, 503)
        assert gateway.process.alive
    finally:
        gateway.stop()
        server.stop()


async def test_expired_token_is_refused_and_the_sdk_refreshes(pyserver: Upstream) -> None:
    """RFC 6750 §3.1 invalid_token on exp; the SDK then uses its refresh grant (OAuth 2.1 §4.3)."""
    server = start_auth_server(test_control=True, access_token_ttl=3)
    gateway = start_gateway([("py", pyserver.url)], issuer=server.issuer, auth_extra="leeway: 0s")
    try:
        storage = MemoryTokenStorage()
        login = HeadlessLogin("alice", "alice-password")
        async with connect(
            gateway.url, "alice", storage=storage, login=login, mode="legacy"
        ) as client:
            assert text_of(await client.call_tool("py__echo", {"text": "1"})) == "1"
            first = await storage.get_tokens()
            assert first is not None
            assert first.refresh_token
            await anyio.sleep(4)
            expired = mcp_post(gateway, first.access_token)
            assert expired.status_code == 401
            assert 'error="invalid_token"' in expired.headers["www-authenticate"]
            assert text_of(await client.call_tool("py__echo", {"text": "2"})) == "2"
            second = await storage.get_tokens()
        assert second is not None
        assert second.access_token != first.access_token
        assert len(login.authorization_urls) == 1, "refreshed, not logged in again"
    finally:
        gateway.stop()
        server.stop()


async def test_a_foreign_origin_is_403_and_the_gateways_own_is_served(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    """MCP basic/transports "Security Warning": the Origin is validated (DNS rebinding);
    ``public_url``'s own origin is always accepted, ``allowed_origins`` adds others."""
    token = await token_for(auth_server, "alice", gateway.url, "mcp:tools tools:call")
    headers = {"Authorization": f"Bearer {token}", "Origin": "http://attacker.example"}
    assert post_json_status(gateway.url, headers) == 403
    assert post_json_status(gateway.url, {**headers, "Origin": gateway.base}) == 200
    assert post_json_status(gateway.url, {**headers, "Origin": INSPECTOR}) == 200


async def test_a_loopback_gateway_answers_another_host_name_421(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    """RFC 9110 §15.5.20: a loopback ``public_url`` serves loopback ``Host`` names only, so
    a page whose name was rebound to 127.0.0.1 (no Origin on a GET) is not served."""
    token = await token_for(auth_server, "alice", gateway.url, "mcp:tools tools:call")
    headers = {"Authorization": f"Bearer {token}"}
    assert post_json_status(gateway.url, {**headers, "Host": "attacker.example"}) == 421
    rebound = httpx2.get(gateway.base + "/healthz", headers={"Host": "attacker.example"})
    assert rebound.status_code == 421
    assert post_json_status(gateway.url, {**headers, "Host": f"localhost:{gateway.port}"}) == 200


async def test_bodies_and_heads_over_the_server_bounds_are_413_and_431(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    """``server.max_body_bytes`` (4 MiB) bounds a request's body: 413;
    ``server.max_header_bytes`` (16 KiB) and ``server.max_headers`` (100) its head: 431
    (RFC 6585 §5)."""
    token = await token_for(auth_server, "alice", gateway.url, "mcp:tools tools:call")
    authorized = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    pad = b"x" * (5 << 20)
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + pad + b'"}}'
    response = httpx2.post(gateway.url, content=body, headers=authorized, timeout=20)
    assert response.status_code == 413
    assert post_json_status(gateway.url, {**authorized, "X-Big": "y" * (17 << 10)}) == 431
    many = {f"X-Many-{n}": "z" for n in range(101)}
    assert post_json_status(gateway.url, {**authorized, **many}) == 431
    assert post_json_status(gateway.url, authorized) == 200


async def test_another_users_session_id_is_404(gateway: Gateway, auth_server: AuthServer) -> None:
    """MCP basic/security_best_practices "Session Hijacking": a session id is bound to its
    user (issuer and subject); bob holding alice's id gets 404, as for an unknown one."""
    alice = await token_for(auth_server, "alice", gateway.url, "mcp:tools tools:call")
    bob = await token_for(auth_server, "bob", gateway.url, "mcp:tools")
    opened = mcp_post(gateway, alice)
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    as_alice = {**MCP_HEADERS, "Mcp-Session-Id": session, "Authorization": f"Bearer {alice}"}
    assert httpx2.post(gateway.url, json=ping, headers=as_alice, timeout=10).status_code == 200
    as_bob = {**as_alice, "Authorization": f"Bearer {bob}"}
    assert httpx2.post(gateway.url, json=ping, headers=as_bob, timeout=10).status_code == 404


def post_json_status(url: str, headers: dict[str, str]) -> int:
    """The status of an ``initialize`` POSTed with these headers added to a client's."""
    return httpx2.post(
        url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10
    ).status_code


def test_the_authorization_servers_metadata_is_relayed(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    """``auth.relay_authorization_server_metadata`` (on by default): a client that looks for
    RFC 8414 metadata at the gateway's origin finds the authorization server's, as fetched."""
    own = httpx2.get(f"{auth_server.issuer}/.well-known/oauth-authorization-server", timeout=10)
    for name in ("oauth-authorization-server", "openid-configuration"):
        relayed = httpx2.get(f"{gateway.base}/.well-known/{name}", timeout=10)
        assert relayed.status_code == 200, name
        assert relayed.json()["issuer"] == auth_server.issuer
        assert relayed.json()["token_endpoint"] == own.json()["token_endpoint"]


def test_hs256_tokens_verify_with_the_shared_secret_only(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    """``auth.shared_secret`` with HS256 in ``algorithms`` (RFC 7518 §3.2): a token the
    secret signed is served; one another secret signed, or an unsigned one (``alg:
    none``, RFC 8725 §3.1), is ``invalid_token``.  oidc-provider signs no HS256 access
    token, so these are minted here as an issuer sharing the secret would."""
    now = int(time.time())
    claims = {
        "iss": auth_server.issuer,
        "aud": gateway.url,
        "sub": "carol",
        "exp": now + 300,
        "iat": now,
        "scope": "mcp:tools",
    }
    assert (
        mcp_post(gateway, jwt.encode(claims, SHARED_SECRET, algorithm="HS256")).status_code == 200
    )
    for token in (
        jwt.encode(claims, "another-secret-of-thirty-two-bytes-or-more!", algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
    ):
        response = mcp_post(gateway, token)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
