"""Opaque access tokens checked by RFC 7662 introspection, end to end through real parts.

Authorization server: oidc-provider (``e2e/as.mjs``) issuing opaque tokens for this
gateway's resource (``--opaque-resource``) and introspecting them for its confidential
client ``aigw-introspector``; client: the official MCP Python SDK with
``OAuthClientProvider``; upstream: a server written with the ``mcp`` SDK; aigw with
``auth.introspection``.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx2
import pytest

from .aigw import Gateway, mcp_post, start_gateway
from .harness.authserver import AuthServer, start_auth_server
from .harness.oauth_client import connect
from .harness.processes import free_port
from .harness.results import text_of
from .harness.tokens import grant_for, token_for
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def opaque(node_modules: None, pyserver: Upstream) -> Iterator[tuple[AuthServer, Gateway]]:
    """An authorization server whose tokens for this gateway are opaque, and the gateway."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    server = start_auth_server(opaque_resources=(resource,))
    try:
        endpoint = httpx2.get(f"{server.issuer}/.well-known/openid-configuration", timeout=10)
        introspection = (
            "introspection:\n"
            f"  endpoint: {endpoint.json()['introspection_endpoint']}\n"
            "  client_id: aigw-introspector\n"
            "  client_secret: aigw-introspector-secret\n"
            "  cache_ttl: 1s\n"
        )
        gateway = start_gateway(
            [("py", pyserver.url)], issuer=server.issuer, auth_extra=introspection, port=port
        )
        try:
            yield server, gateway
        finally:
            gateway.stop()
    finally:
        server.stop()


async def test_an_sdk_client_with_an_opaque_token_lists_and_calls(
    opaque: tuple[AuthServer, Gateway],
) -> None:
    """RFC 7662 §2: the token is no JWT; the AS says it is active, for whom, with which
    scopes, and the SDK's whole flow ends in a tool result."""
    server, gateway = opaque
    token = await token_for(server, "alice", gateway.url, "mcp:tools tools:call")
    assert token.count(".") != 2, "the AS issued a JWT, not an opaque token"
    async with connect(gateway.url, "alice", mode="legacy") as client:
        assert "py__echo" in {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("py__echo", {"text": "introspected"})
        assert text_of(result) == "introspected"


async def test_an_unknown_opaque_token_is_invalid_token(
    opaque: tuple[AuthServer, Gateway],
) -> None:
    """RFC 7662 §2.2: ``active: false`` for a token the AS never issued; RFC 6750 §3.1."""
    _, gateway = opaque
    response = mcp_post(gateway, "not-a-token-the-as-issued-" + "x" * 20)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_an_opaque_token_without_the_required_scope_gets_403(
    opaque: tuple[AuthServer, Gateway],
) -> None:
    """The introspected ``scope`` is checked as a JWT's is (RFC 6750 §3.1)."""
    server, gateway = opaque
    token = await token_for(server, "alice", gateway.url, "tools:call")
    response = mcp_post(gateway, token)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_a_revoked_opaque_token_is_refused_within_cache_ttl(
    opaque: tuple[AuthServer, Gateway],
) -> None:
    """RFC 7009 revocation at the AS takes effect at aigw within ``cache_ttl`` (1 s here,
    60 s by default): RFC 7662 section 4, a cached answer outlives a revocation.  Before,
    an active answer was trusted until the token's ``exp``."""
    server, gateway = opaque
    token, client_id = await grant_for(server, "alice", gateway.url, "mcp:tools tools:call")
    assert mcp_post(gateway, token).status_code == 200
    discovery = httpx2.get(f"{server.issuer}/.well-known/openid-configuration", timeout=10)
    revoked = httpx2.post(
        discovery.json()["revocation_endpoint"],
        data={"token": token, "token_type_hint": "access_token", "client_id": client_id},
        timeout=10,
    )
    assert revoked.status_code == 200, revoked.text
    await anyio.sleep(1.2)
    response = mcp_post(gateway, token)
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
