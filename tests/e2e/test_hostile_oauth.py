"""A ``user_oauth`` backend and its authorization server built to hurt aigw, its OAuth
client (docs/security.md "aigw as an OAuth client"): discovery goes nowhere the rules
do not allow, a token that would inject a header never reaches a backend, a token
answer trickled for ever costs the user a bounded wait and aigw no connection.

Real parts: ``upstreams/hostile_oauth.py`` (its docstring says what it sends), the
real aigw, oidc-provider as aigw's own issuer (where the user signs in first), the
``mcp`` SDK pyserver beside it and the ``mcp`` SDK client; the browser is headless
(``harness.login``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest

from .aigw import Gateway, start_gateway
from .harness.authserver import AuthServer
from .harness.oauth_client import MemoryTokenStorage
from .harness.processes import LOG_DIR
from .harness.upstreams import Upstream, serving_twisted_upstream
from .test_user_oauth import call_whoami, elicited, sign_in

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    """The base URL of ``hostile_oauth``."""
    with serving_twisted_upstream("hostile_oauth") as url:
        yield url


@pytest.fixture(scope="module")
def gateway(auth_server: AuthServer, hostile: str, pyserver: Upstream) -> Iterator[Gateway]:
    state = tempfile.mkdtemp(prefix="aigw-hostile-oauth-state-", dir=LOG_DIR)
    started = start_gateway(
        [
            ("crm", hostile + "/mcp", "auth:\n  user_oauth: {timeout: 2s}\n"),
            ("plain", pyserver.url),
        ],
        issuer=auth_server.issuer,
        extra=f"state_dir: {state}\n",
    )
    try:
        yield started
    finally:
        started.stop()


async def control(hostile: str, **settings: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        (await http.post(hostile + "/control", json=settings)).raise_for_status()


async def stats(hostile: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(timeout=10) as http:
        answer: dict[str, Any] = (await http.get(hostile + "/stats")).json()
        return answer


async def to_callback(gateway: Gateway, storage: MemoryTokenStorage) -> httpx2.Response:
    """Alice's call is answered -32042; her browser signs in at aigw, is sent to the
    hostile server's authorization endpoint, which sends it straight back to aigw's
    callback with a code: aigw's callback page."""
    url = await elicited(gateway, "alice", storage)
    login = await sign_in(url, "alice")
    assert login.status_code == 302, login.text
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
        back = await http.get(login.headers["location"])
        assert back.status_code == 302, back.text
        return await http.get(back.headers["location"])


async def test_a_hostile_backend_and_authorization_server(gateway: Gateway, hostile: str) -> None:
    alice = MemoryTokenStorage()

    # The backend names the cloud metadata service as its authorization server, and its
    # metadata at another origin: neither is asked; the user's page says why.
    url = await elicited(gateway, "alice", alice)
    page = await sign_in(url, "alice")
    assert page.status_code == 502, page.text
    assert "169.254.169.254" in page.text
    assert "link-local" in page.text
    assert (await stats(hostile))["elsewhere"] == 0

    # Its own server now; its token endpoint answers a token holding CR LF and a header.
    await control(hostile, issuer=hostile)
    page = await to_callback(gateway, alice)
    assert page.status_code == 502, page.text
    assert "no usable access_token" in page.text
    seen = await stats(hostile)
    assert seen["tokens"] == 1
    assert seen["authorizations"] == []
    assert seen["elsewhere"] == 0
    # Nothing was stored: the next call asks her to authorize again.
    again = await call_whoami(gateway, "alice", alice)
    assert getattr(again, "code", None) == -32042, again
    assert (await stats(hostile))["authorizations"] == []

    # The token answer trickles a byte a second, for ever: the page answers once
    # user_oauth.timeout (2 s) has passed, and aigw closes the connection.
    await control(hostile, token="drip")
    page = await to_callback(gateway, alice)
    assert page.status_code == 502, page.text
    assert "no answer within 2 s" in page.text

    for _ in range(100):
        if (await stats(hostile))["trickling"] == 0:
            break
        await anyio.sleep(0.1)
    assert (await stats(hostile))["trickling"] == 0, "aigw left the trickling answer open"
    log = gateway.process.log()
    assert "Traceback" not in log, gateway.process.log_tail(80)
    assert "X-Injected" not in log
