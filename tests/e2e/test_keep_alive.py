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
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from .aigw import Gateway, start_gateway
from .harness.oauth_client import connect_plain
from .harness.results import text_of
from .harness.upstreams import Upstream, start_pyserver

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
