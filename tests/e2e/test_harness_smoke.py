"""Smoke tests of the e2e harness itself, without the gateway.

They prove the third-party parts work on this machine: the oidc-provider AS (discovery,
dynamic registration, headless login, PKCE, resource-bound JWTs, per-user scopes,
refresh, key rotation), server-everything and the pyserver (plain MCP), and the
official Python and TypeScript OAuth clients against a reference resource server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx2
import jwt
import mcp_types as types
import pytest

from .harness.authserver import AuthServer
from .harness.login import LoginError, authorize
from .harness.oauth_client import (
    HeadlessLogin,
    MemoryTokenStorage,
    connect,
    connect_plain,
    run_ts_client,
)
from .harness.results import ResourceUpdates
from .harness.upstreams import Upstream, start_pyserver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

RESOURCE = "http://127.0.0.1:9/mcp"
REDIRECT_URI = "http://127.0.0.1:9/callback"


async def _register(http: httpx2.AsyncClient, issuer: str, scope: str | None) -> str:
    body: dict[str, Any] = {
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "application_type": "native",
    }
    if scope is not None:
        body["scope"] = scope  # what the Python SDK does
    response = await http.post(f"{issuer}/reg", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


async def _token(
    auth_server: AuthServer,
    user: str,
    *,
    resource: str = RESOURCE,
    scope: str | None = "mcp:tools tools:call offline_access",
) -> dict[str, Any]:
    """Registration + headless login + PKCE code exchange, as a client would do it."""
    issuer = auth_server.issuer
    async with httpx2.AsyncClient(timeout=10) as http:
        client_id = await _register(http, issuer, scope)
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        state = secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": state,
            "resource": resource,
        }
        if scope is not None:
            query["scope"] = scope
            query["prompt"] = "consent"
        code = await authorize(f"{issuer}/auth?{urlencode(query)}", user)
        assert code.state == state
        assert code.iss == issuer
        response = await http.post(
            f"{issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code.code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": client_id,
                "resource": resource,
            },
        )
        assert response.status_code == 200, response.text
        token = dict(response.json())
        token["client_id"] = client_id
        return token


def _verify(auth_server: AuthServer, token: str, audience: str = RESOURCE) -> dict[str, Any]:
    jwks = jwt.PyJWKClient(auth_server.jwks_uri, cache_keys=False)
    key = jwks.get_signing_key_from_jwt(token)
    return dict(
        jwt.decode(
            token, key.key, algorithms=["RS256"], audience=audience, issuer=auth_server.issuer
        )
    )


async def test_discovery(auth_server: AuthServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        for path in ("openid-configuration", "oauth-authorization-server"):
            response = await http.get(f"{auth_server.issuer}/.well-known/{path}")
            assert response.status_code == 200
            meta = response.json()
            assert meta["issuer"] == auth_server.issuer
            assert meta["code_challenge_methods_supported"] == ["S256"]
            assert {"mcp:tools", "tools:call", "offline_access"} <= set(meta["scopes_supported"])
            assert meta["registration_endpoint"] == f"{auth_server.issuer}/reg"
            assert meta["authorization_response_iss_parameter_supported"] is True


async def test_alice_gets_resource_bound_jwt(auth_server: AuthServer) -> None:
    token = await _token(auth_server, "alice")
    claims = _verify(auth_server, token["access_token"])
    assert claims["aud"] == RESOURCE
    assert claims["sub"] == "alice"
    assert set(claims["scope"].split()) == {"mcp:tools", "tools:call"}
    assert jwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"
    assert token["refresh_token"]

    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            auth_server.token_endpoint,
            data={
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
                "client_id": token["client_id"],
                "resource": RESOURCE,
            },
        )
    assert response.status_code == 200, response.text
    refreshed = _verify(auth_server, response.json()["access_token"])
    assert refreshed["aud"] == RESOURCE
    assert refreshed["scope"] == claims["scope"]


async def test_bob_lacks_tools_call(auth_server: AuthServer) -> None:
    token = await _token(auth_server, "bob")
    claims = _verify(auth_server, token["access_token"])
    assert claims["sub"] == "bob"
    assert claims["scope"].split() == ["mcp:tools"]


async def test_default_scope_is_the_users_resource_scopes(auth_server: AuthServer) -> None:
    for user, expected in (("alice", ["mcp:tools", "tools:call"]), ("bob", ["mcp:tools"])):
        token = await _token(auth_server, user, scope=None)
        assert _verify(auth_server, token["access_token"])["scope"].split() == expected


def _login_query(client_id: str) -> dict[str, str]:
    """An authorization request for RESOURCE with a dummy PKCE challenge (login tests only)."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
        "scope": "mcp:tools",
        "resource": RESOURCE,
    }


async def test_wrong_password_is_refused(auth_server: AuthServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        client_id = await _register(http, auth_server.issuer, None)
    query = _login_query(client_id)
    with pytest.raises(LoginError, match="401"):
        await authorize(f"{auth_server.issuer}/auth?{urlencode(query)}", "alice", "wrong")


async def test_key_rotation(auth_server: AuthServer) -> None:
    before = await _token(auth_server, "alice")
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    new_kid = auth_server.rotate_keys(keep_old=True)
    assert new_kid != old_kid
    assert auth_server.active_kid() == new_kid
    kids = {k["kid"] for k in auth_server.jwks()["keys"]}
    assert {old_kid, new_kid} <= kids
    after = await _token(auth_server, "alice")
    assert jwt.get_unverified_header(after["access_token"])["kid"] == new_kid
    _verify(auth_server, after["access_token"])
    _verify(auth_server, before["access_token"])  # old key kept


async def test_server_everything_plain(server_everything: Upstream) -> None:
    async with connect_plain(server_everything.url) as client:
        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        assert "echo" in names
        result = await client.call_tool("echo", {"message": "hi"})
        assert "hi" in json.dumps(result.model_dump(mode="json"))


async def test_pyserver_plain(pyserver: Upstream) -> None:
    async with connect_plain(pyserver.url, mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"echo", "whoami-headers", "slow", "make-link", "ask-llm", "ask-user"} <= names
        result = await client.call_tool("echo", {"text": "hello"})
        assert result.content[0].text == "hello"  # type: ignore[union-attr]
        result = await client.call_tool("whoami-headers", {})
        headers = json.loads(result.content[0].text)  # type: ignore[union-attr]
        assert headers["host"] == f"127.0.0.1:{pyserver.port}"
        result = await client.call_tool("make-link", {})
        assert [c.type for c in result.content] == ["text", "resource_link"]


async def test_pyserver_stateless(pyserver_stateless: Upstream) -> None:
    async with connect_plain(pyserver_stateless.url, mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "stateless"})
        assert result.content[0].text == "stateless"  # type: ignore[union-attr]


async def test_pyserver_paginates(pyserver_many_tools: Upstream) -> None:
    async with connect_plain(pyserver_many_tools.url, mode="legacy") as client:
        page = await client.list_tools()
        assert len(page.tools) == 10
        assert page.next_cursor
        names = [t.name for t in page.tools]
        while page.next_cursor:
            page = await client.list_tools(cursor=page.next_cursor)
            names += [t.name for t in page.tools]
        assert len(names) == len(set(names))
        assert {f"t{i:02d}" for i in range(30)} <= set(names)


@pytest.fixture(scope="module")
def protected_pyserver(auth_server: AuthServer) -> Iterator[Upstream]:
    """The pyserver as its own OAuth resource server (SDK auth), trusting the test AS."""
    upstream = start_pyserver(auth_issuer=auth_server.issuer)
    try:
        yield upstream
    finally:
        upstream.stop()


async def test_python_oauth_client(protected_pyserver: Upstream) -> None:
    storage = MemoryTokenStorage()
    async with connect(protected_pyserver.url, "alice", storage=storage) as client:
        result = await client.call_tool("echo", {"text": "through oauth"})
        assert result.content[0].text == "through oauth"  # type: ignore[union-attr]
    assert storage.tokens is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == protected_pyserver.url
    # The SDK asks for the PRM scopes_supported (the server's required scopes).
    assert claims["scope"].split() == ["mcp:tools"]


def test_ts_oauth_client(protected_pyserver: Upstream) -> None:
    lines = run_ts_client(
        protected_pyserver.url, "alice", call="echo", args={"text": "from ts"}, timeout=45
    )
    events = {line["event"]: line for line in lines}
    assert "echo" in {t["name"] for t in events["tools"]["tools"]}
    assert events["call"]["result"]["content"][0]["text"] == "from ts"


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_pyserver_features(pyserver: Upstream) -> None:
    """What the gateway tests rely on: prompts, resources, subscriptions, progress,
    cancellation, sampling and elicitation round trips."""

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> Any:
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="four"),
            model="fake-llm",
        )

    async def elicitation(context: Any, params: types.ElicitRequestParams) -> Any:
        return types.ElicitResult(action="accept", content={"name": "Alice"})

    updates = ResourceUpdates()

    async with connect_plain(
        pyserver.url,
        mode="legacy",
        sampling_callback=sampling,
        elicitation_callback=elicitation,
        message_handler=updates,
    ) as client:
        prompt = await client.get_prompt("greet", {"name": "Bob"})
        assert "Bob" in prompt.messages[0].content.text  # type: ignore[union-attr]
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        assert {"test://static/hello", "test://counter"} <= resources
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["test://items/{item_id}"]
        item = await client.read_resource("test://items/42")
        assert json.loads(item.contents[0].text) == {"id": "42"}  # type: ignore[union-attr]

        await client.subscribe_resource("test://counter")
        await client.call_tool("bump", {})
        with anyio.fail_after(5):
            await updates.arrived.wait()
        assert updates.uris == ["test://counter"]

        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        result = await client.call_tool(
            "slow", {"seconds": 0.2, "steps": 2}, progress_callback=on_progress
        )
        assert result.content[0].text == "slept 0.2s"  # type: ignore[union-attr]
        assert seen == [1, 2]

        result = await client.call_tool("ask-llm", {"question": "2+2?"})
        assert result.content[0].text == "llm said: four"  # type: ignore[union-attr]
        result = await client.call_tool("ask-user", {})
        assert result.content[0].text == "hello Alice"  # type: ignore[union-attr]

        before = json.loads((await client.call_tool("slow-stats", {})).content[0].text)  # type: ignore[union-attr]
        with anyio.move_on_after(0.5):
            await client.call_tool("slow", {"seconds": 5, "steps": 5})
        with anyio.fail_after(5):
            while True:
                stats = json.loads((await client.call_tool("slow-stats", {})).content[0].text)  # type: ignore[union-attr]
                if stats["cancelled"] > before["cancelled"]:
                    break
                await anyio.sleep(0.1)


async def test_python_oauth_client_refreshes_expired_token(node_modules: None) -> None:
    """Short-lived access tokens: within one connection the SDK refreshes before expiry
    (public client + PKCE + refresh token), without a second login.

    (A *new* ``OAuthClientProvider`` over stored tokens does not know their expiry: it
    sends the stale token, gets 401 and logs in again instead of refreshing.)
    """
    from .harness.authserver import start_auth_server

    short = start_auth_server(access_token_ttl=2)
    upstream = start_pyserver(auth_issuer=short.issuer)
    try:
        storage = MemoryTokenStorage()
        login = HeadlessLogin("alice")
        async with connect(upstream.url, "alice", storage=storage, login=login) as client:
            await client.call_tool("echo", {"text": "one"})
            assert storage.tokens is not None
            first = storage.tokens
            assert first.refresh_token
            await anyio.sleep(2.5)
            result = await client.call_tool("echo", {"text": "two"})
            assert result.content[0].text == "two"  # type: ignore[union-attr]
        assert storage.tokens.access_token != first.access_token
        assert len(login.authorization_urls) == 1  # refreshed, no second login
        claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
        assert claims["aud"] == upstream.url
    finally:
        upstream.stop()
        short.stop()


async def test_login_form_for_humans(auth_server: AuthServer) -> None:
    async with httpx2.AsyncClient(timeout=10, follow_redirects=True) as http:
        client_id = await _register(http, auth_server.issuer, None)
        query = _login_query(client_id)
        response = await http.get(f"{auth_server.issuer}/auth?{urlencode(query)}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/interaction/' in response.text
    assert 'name="password"' in response.text


def test_a_start_that_stalls_is_tried_again_and_an_exit_is_not(tmp_path: Any) -> None:
    """``attempts=2``: a process still running but silent at its timeout is stopped and
    started once more (the authorization server's start stalled 30 s once on CI); one that
    exits before it is ready is reported at once, not started again."""
    import sys

    from .harness.processes import ProcessError, start_process

    marker = tmp_path / "started-once"
    stalls_first = (
        "import os, sys, time\n"
        f"marker = {str(marker)!r}\n"
        "if not os.path.exists(marker):\n"
        "    open(marker, 'w').close()\n"
        "    time.sleep(60)\n"
        "print('READY second', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = start_process(
        [sys.executable, "-c", stalls_first],
        ready_line_regex=r"^READY (\S+)",
        timeout=3.0,
        name="stalls",
        attempts=2,
    )
    try:
        assert proc.ready_match is not None
        assert proc.ready_match.group(1) == "second"
    finally:
        proc.stop()

    counter = tmp_path / "exits"
    exits = f"open({str(counter)!r}, 'a').write('x'); raise SystemExit(3)"
    with pytest.raises(ProcessError, match="exited with status 3"):
        start_process(
            [sys.executable, "-c", exits], ready_line_regex="^READY", timeout=3.0, attempts=2
        )
    assert counter.read_text() == "x"
