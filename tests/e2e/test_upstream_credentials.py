"""Credentials per backend, end to end: each backend gets what its ``auth`` says, and
never the user's token (MCP Authorization, "Access Token Privilege Restriction").

Authorization server: oidc-provider (``e2e/as.mjs``) granting client credentials
(RFC 6749 §4.4) and RFC 8693 token exchange to the confidential client
``aigw-upstream``; client: the official MCP Python SDK; upstream: the ``mcp`` SDK
server's ``whoami-headers`` tool, which answers with the headers it received.  The
same upstream is configured as several backends, one per credential mode.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx2
import jwt
import pytest

from .aigw import INITIALIZE, Gateway, start_gateway
from .harness.authserver import AuthServer
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.processes import LOG_DIR
from .harness.results import text_of
from .harness.tokens import token_for
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

CLIENT_ID = "aigw-upstream"


@pytest.fixture(scope="module")
def gateway(auth_server: AuthServer, pyserver: Upstream) -> Iterator[Gateway]:
    directory = tempfile.mkdtemp(prefix="aigw-credentials-", dir=LOG_DIR)
    secret = os.path.join(directory, "upstream.secret")
    with open(secret, "w") as handle:
        handle.write("aigw-upstream-secret\n")
    client = f"client_id: {CLIENT_ID}, client_secret_file: {secret}"
    cc = (
        "headers: {X-Static: static-value}\n"
        "auth:\n"
        f"  client_credentials: {{issuer: '{auth_server.issuer}', {client},\n"
        f"    scope: mcp:tools, resource: '{pyserver.url}'}}\n"
        "  claims_to_headers: {sub: X-Forwarded-User}\n"
    )
    headers_file = os.path.join(directory, "tx-headers.yaml")
    with open(headers_file, "w") as handle:
        handle.write("X-From-File: file-value\n")
    os.chmod(headers_file, 0o600)
    tx = (
        f"headers_file: {headers_file}\n"
        "auth:\n"
        f"  token_exchange: {{token_endpoint: '{auth_server.token_endpoint}', {client},\n"
        f"    audience: crm, resource: '{pyserver.url}'}}\n"
        "  claims_to_headers: {sub: X-Forwarded-User, client_id: X-Client-Id}\n"
    )
    # Asks for tools:call: the test AS refuses the exchange of a token without it.
    narrow = (
        "auth:\n"
        f"  token_exchange: {{token_endpoint: '{auth_server.token_endpoint}', {client},\n"
        f"    scope: 'tools:call', resource: '{pyserver.url}'}}\n"
    )
    started = start_gateway(
        [("cc", pyserver.url, cc), ("tx", pyserver.url, tx), ("narrow", pyserver.url, narrow)],
        issuer=auth_server.issuer,
    )
    try:
        yield started
    finally:
        started.stop()


async def headers_seen(gateway: Gateway, backend: str, storage: MemoryTokenStorage) -> Any:
    async with connect(gateway.url, "alice", storage=storage, mode="legacy") as client:
        result = await client.call_tool(f"{backend}__whoami-headers", {})
    return json.loads(text_of(result))


def user_token(storage: MemoryTokenStorage) -> str:
    assert storage.tokens is not None
    return storage.tokens.access_token


def claims_of(authorization: str) -> dict[str, Any]:
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer"
    return dict(jwt.decode(token, options={"verify_signature": False}))


def assert_no_user_token(headers: dict[str, str], user: str) -> None:
    assert all(user not in value for value in headers.values())


async def test_client_credentials_the_gateways_own_token(
    gateway: Gateway, auth_server: AuthServer, pyserver: Upstream
) -> None:
    """RFC 6749 §4.4 with RFC 8707's resource: a token for this backend, of aigw's client,
    with the static header and the user's ``sub`` as ``X-Forwarded-User``."""
    storage = MemoryTokenStorage()
    headers = await headers_seen(gateway, "cc", storage)
    claims = claims_of(headers["authorization"])
    assert claims["iss"] == auth_server.issuer
    assert claims["aud"] == pyserver.url
    assert (claims["sub"], claims["client_id"]) == (CLIENT_ID, CLIENT_ID)
    assert claims["scope"] == "mcp:tools"
    assert headers["x-static"] == "static-value"
    assert headers["x-forwarded-user"] == "alice"
    assert_no_user_token(headers, user_token(storage))
    # One token for the backend, whoever calls, until it is due for renewal.
    again = await headers_seen(gateway, "cc", MemoryTokenStorage())
    assert again["authorization"] == headers["authorization"]


async def test_token_exchange_a_token_for_the_backend_per_user(
    gateway: Gateway, auth_server: AuthServer, pyserver: Upstream
) -> None:
    """RFC 8693: the user's token is the subject token, the backend the resource; the
    backend gets the exchanged token (the user as ``sub``, aigw as ``act``), never the
    user's, and the same one again while it is valid; with the headers of its
    ``headers_file``."""
    storage = MemoryTokenStorage()
    headers = await headers_seen(gateway, "tx", storage)
    token = user_token(storage)
    claims = claims_of(headers["authorization"])
    assert claims["iss"] == auth_server.issuer
    assert claims["aud"] == pyserver.url
    assert claims["sub"] == "alice"
    assert claims["act"] == {"sub": CLIENT_ID}
    assert headers["authorization"] != f"Bearer {token}"
    assert headers["x-forwarded-user"] == "alice"
    assert headers["x-from-file"] == "file-value"  # backends[].headers_file
    assert (
        headers["x-client-id"]
        == jwt.decode(token, options={"verify_signature": False})["client_id"]
    )
    assert_no_user_token(headers, token)
    again = await headers_seen(gateway, "tx", storage)
    assert again["authorization"] == headers["authorization"]


def rpc(gateway: Gateway, token: str, message: Any, session_id: str | None = None) -> Any:
    """One JSON-RPC message by hand (the SDK client cannot change its token mid-session)."""
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    if session_id is not None:
        headers |= {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
    response = httpx2.post(gateway.url, json=message, headers=headers, timeout=20)
    response.raise_for_status()
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return response.headers.get("mcp-session-id"), json.loads(data[-1]) if data else None
    body = json.loads(response.text) if response.text else None
    return response.headers.get("mcp-session-id"), body


async def test_a_refused_exchange_is_an_error_naming_the_backend(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    """A refused exchange fails the call with -32015 naming the backend: no fallback to
    an exchange made for another token of the same user, nor to anything else."""
    full = await token_for(auth_server, "alice", gateway.url, "mcp:tools tools:call")
    narrow = await token_for(auth_server, "alice", gateway.url, "mcp:tools")
    session_id, _ = rpc(gateway, full, INITIALIZE)
    assert session_id
    rpc(gateway, full, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session_id)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
    call["params"] = {"name": "narrow__whoami-headers", "arguments": {}}
    _, answer = rpc(gateway, full, call, session_id)
    assert (
        claims_of(json.loads(answer["result"]["content"][0]["text"])["authorization"])["scope"]
        == "tools:call"
    )
    # The same user and session, a token without tools:call: the exchange is refused.
    _, answer = rpc(gateway, narrow, {**call, "id": 3}, session_id)
    error = answer["error"]
    assert error["code"] == -32015, error
    assert error["data"]["backend"] == "narrow"
    assert error["data"]["reason"] == "credentials"
    assert "invalid_scope" in error["data"]["detail"]
    assert narrow not in json.dumps(answer)


async def test_no_token_nor_secret_in_the_log(gateway: Gateway) -> None:
    """Secrets are never logged: not the user's token, not the tokens aigw was issued,
    not the client secret (the log is at debug level)."""
    storage = MemoryTokenStorage()
    issued = [
        (await headers_seen(gateway, backend, storage))["authorization"].partition(" ")[2]
        for backend in ("cc", "tx")
    ]
    log = gateway.process.log()
    assert "whoami-headers" in log or "tools/call" in log  # the calls were logged
    for secret in (user_token(storage), *issued, "aigw-upstream-secret"):
        assert secret not in log
