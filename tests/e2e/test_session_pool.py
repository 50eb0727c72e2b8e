"""The pool of upstream sessions aigw keeps for 2026-07-28 clients, end to end.

A 2026-07-28 client has no session, a session-based backend needs one: aigw keeps one
per user and backend (``aigw/gateway/pool.py``), at most ``sessions.pool_size`` (least
recently used out), each ended after ``sessions.pool_idle_timeout`` without use.
Clients: the official MCP Python SDK pinned to 2026-07-28, signed in through
oidc-provider as alice and bob.  Backend: the ``mcp`` SDK server (stateful), whose
``whoami-headers`` tool shows the upstream ``Mcp-Session-Id`` aigw used; an ended one
is 404 there (2025-11-25 basic/transports, "Session Management").
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator

import anyio
import httpx2
import pytest

from .aigw import INITIALIZE, MCP_HEADERS, Gateway, start_gateway
from .harness.authserver import AuthServer
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def upstream_session(gateway: Gateway, user: str, storage: MemoryTokenStorage) -> str:
    """The upstream session id aigw used for ``user``'s call (a 2026-07-28 client)."""
    async with connect(gateway.url, user, storage=storage, mode="2026-07-28") as client:
        result = await client.call_tool("plain__whoami-headers", {})
    session_id: str = json.loads(text_of(result))["mcp-session-id"]
    assert session_id
    return session_id


async def ended_at(backend: Upstream, session_id: str) -> bool:
    """The backend no longer knows ``session_id`` (404: aigw ended it with DELETE)."""
    ping = {**INITIALIZE, "method": "ping", "params": {}}
    headers = {**MCP_HEADERS, "Mcp-Session-Id": session_id}
    async with httpx2.AsyncClient(timeout=10) as http:
        answer = await http.post(backend.url, json=ping, headers=headers)
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 404


async def eventually_ended(
    backend: Upstream,
    session_id: str,
    meanwhile: Callable[[], Awaitable[object]] | None = None,
) -> bool:
    """``ended_at``, polled for at most about 10 s (aigw ends evicted sessions in the
    background), ``meanwhile`` awaited before each look."""
    for _ in range(100):
        if meanwhile is not None:
            await meanwhile()
        if await ended_at(backend, session_id):
            return True
        await anyio.sleep(0.1)
    return False


@pytest.fixture
def bounded(auth_server: AuthServer, pyserver: Upstream) -> Iterator[Gateway]:
    gateway = start_gateway(
        [("plain", pyserver.url)],
        issuer=auth_server.issuer,
        sessions=", pool_size: 1",
        metrics=True,
    )
    try:
        yield gateway
    finally:
        gateway.stop()


async def test_pool_size_bounds_the_pooled_sessions_least_recently_used_out(
    bounded: Gateway, pyserver: Upstream
) -> None:
    """``pool_size: 1``: alice's upstream session serves her calls until bob's takes its
    place; hers is then ended at the backend, and her next call opens another."""
    alice, bob = MemoryTokenStorage(), MemoryTokenStorage()
    first = await upstream_session(bounded, "alice", alice)
    assert await upstream_session(bounded, "alice", alice) == first
    assert bounded.metric("aigw_pooled_upstream_sessions") == 1
    assert not await ended_at(pyserver, first)
    bobs = await upstream_session(bounded, "bob", bob)
    assert bobs != first
    assert bounded.metric("aigw_pooled_upstream_sessions") == 1
    assert await eventually_ended(pyserver, first)
    again = await upstream_session(bounded, "alice", alice)
    assert again not in (first, bobs)
    assert bounded.metric("aigw_pooled_upstream_sessions") == 1


@pytest.fixture
def short_idle(auth_server: AuthServer, pyserver: Upstream) -> Iterator[Gateway]:
    gateway = start_gateway(
        [("plain", pyserver.url)],
        issuer=auth_server.issuer,
        sessions=", pool_idle_timeout: 1s",
        metrics=True,
    )
    try:
        yield gateway
    finally:
        gateway.stop()


async def test_pool_idle_timeout_ends_a_session_left_unused(
    short_idle: Gateway, pyserver: Upstream
) -> None:
    """``pool_idle_timeout: 1s``: the pool is swept when it is used, so bob's calls go
    on until alice's upstream session, unused meanwhile, is ended at the backend; her
    next call opens another."""
    alice, bob = MemoryTokenStorage(), MemoryTokenStorage()
    hers = await upstream_session(short_idle, "alice", alice)
    assert await eventually_ended(pyserver, hers, lambda: upstream_session(short_idle, "bob", bob))
    # Swept by bob's last call, not since: his alone.
    assert short_idle.metric("aigw_pooled_upstream_sessions") == 1
    assert await upstream_session(short_idle, "alice", alice) != hers
