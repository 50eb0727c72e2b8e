"""Idle upstream connections with real servers that close them (issue 16, faults).

Two ``mcp`` SDK servers on uvicorn close a connection idle for 2 s: one says so in
every response (``Keep-Alive: timeout=2``, as Node's HTTP server does), the other
says nothing.  aigw is in front of them as three backends:

* ``hinted``: the server that says so, with the default ``keep_alive_timeout`` (4 s):
  aigw believes the hint and closes its idle connections after 1 s;
* ``quiet``: the server that says nothing, with ``keep_alive_timeout: 1500ms``;
* ``longer``: the quiet server again, with ``keep_alive_timeout: 10s``, longer than
  the server's: a request may go out on a connection the server is closing, and one
  safe to replay (a list) is sent again on a new connection (RFC 9112 section 9.3.1).

The client (the official SDK, 2025-11-25) pauses for about the server's 2 s between
rounds, on both sides of it; every tool call to ``hinted`` and ``quiet``, which is
never sent twice, and every list must succeed.

The race itself is rare and cannot be timed from outside, so a server that loses it
every time (``upstreams/faulty.py``'s ``/stale/mcp``: a second request on a connection
is closed unanswered) shows what aigw does then: what is safe to send twice is sent
again on a new connection, a ``tools/call`` is not (-32010, the backend named).
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from .aigw import Gateway, start_gateway
from .harness.oauth_client import connect_plain
from .harness.processes import Process
from .harness.results import text_of
from .harness.upstreams import Upstream, start_pyserver, start_twisted_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

#: The servers' idle timeout, and the pauses around it.
SERVER_KEEP_ALIVE = 2
PAUSES = (0.5, 1.8, 1.9, 1.95, 2.0, 2.02, 2.05, 2.1, 2.2)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Upstream, Upstream]]:
    keep_alive = ["--keep-alive", str(SERVER_KEEP_ALIVE)]
    hinted = start_pyserver(extra_args=[*keep_alive, "--advertise-keep-alive"])
    try:
        quiet = start_pyserver(extra_args=keep_alive)
    except BaseException:
        hinted.process.stop()
        raise
    try:
        yield hinted, quiet
    finally:
        hinted.process.stop()
        quiet.process.stop()


@pytest.fixture(scope="module")
def gateway(servers: tuple[Upstream, Upstream]) -> Iterator[Gateway]:
    hinted, quiet = servers
    started = start_gateway(
        [
            ("hinted", hinted.url),
            ("quiet", quiet.url, "keep_alive_timeout: 1500ms"),
            ("longer", quiet.url, "keep_alive_timeout: 10s"),
        ]
    )
    try:
        yield started
    finally:
        started.stop()


async def test_calls_around_the_servers_idle_close_all_succeed(gateway: Gateway) -> None:
    async with connect_plain(gateway.url, mode="legacy") as client:
        with anyio.fail_after(20):
            await client.list_tools()
        for number, pause in enumerate(PAUSES):
            await anyio.sleep(pause)
            with anyio.fail_after(20):
                for backend in ("hinted", "quiet"):
                    text = f"{backend} after {pause}s ({number})"
                    result = await client.call_tool(f"{backend}__echo", {"text": text})
                    assert not result.is_error, result
                    assert text_of(result) == text, result
                # A list goes to every backend, ``longer`` too: its first request since
                # the last round's list, on a connection it kept past the server's 2 s.
                tools = [tool.name for tool in (await client.list_tools()).tools]
            for backend in ("hinted", "quiet", "longer"):
                assert f"{backend}__echo" in tools, (pause, tools)
    log = gateway.process.log()
    assert "Traceback" not in log
    assert gateway.process.alive()


@pytest.fixture(scope="module")
def stale_server() -> Iterator[Process]:
    process = start_twisted_upstream("faulty")
    try:
        yield process
    finally:
        process.stop()


async def test_a_request_lost_on_a_closing_connection_is_sent_again_if_safe(
    stale_server: Process,
) -> None:
    assert stale_server.ready_match is not None
    # A long idle lifetime: a slow, loaded machine must not close the kept connection
    # first.  Which connection a list takes depends on what else is in flight (the
    # session's GET stream takes an idle one too), so lists go out until one of them
    # met a kept connection; each must be answered.
    url = stale_server.ready_match.group(1) + "/stale/mcp"
    gateway = start_gateway([("stale", url, "keep_alive_timeout: 60s")], metrics=True)
    try:
        async with connect_plain(gateway.url, mode="legacy") as client:
            with anyio.fail_after(30):
                for _ in range(4):
                    tools = [tool.name for tool in (await client.list_tools()).tools]
                    assert tools == ["stale__boom"], tools
                    if "STALE tools/list" in stale_server.log():
                        break
                with pytest.raises(MCPError) as caught:
                    await client.call_tool("stale__boom", {})
        assert caught.value.error.code == -32010, caught.value.error
        assert "stale" in caught.value.error.message, caught.value.error
        assert "not sent twice" in caught.value.error.data["detail"], caught.value.error
        seen = stale_server.log()
        # The list lost on a kept connection, then answered on a new one.
        assert "STALE tools/list" in seen, seen
        assert "SEEN tools/list" in seen, seen
        # The call lost once, and never sent again: the backend never ran it.
        assert seen.count("STALE tools/call") == 1, seen
        assert "SEEN tools/call" not in seen, seen
        log = gateway.process.log()
        # Counted apart: the list recovered (replayed), the call failed with it (lost).
        assert "upstream stale: connection replayed: before the response" in log, log
        assert "upstream stale: connection lost: before the response" in log, log
        connections = "aigw_upstream_connections_total"
        assert (gateway.metric(connections, backend="stale", state="replayed") or 0) >= 1
        assert gateway.metric(connections, backend="stale", state="lost") == 1
        assert "Traceback" not in log
    finally:
        gateway.stop()
