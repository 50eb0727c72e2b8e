"""A backend's ping on the reply of a request aigw makes on its own, before or outside
any client session: answered at once (basic/utilities/ping: the receiver "MUST respond
promptly"; ``gateway/exchange.py`` ``OwnCollector``).

Real parts: ``upstreams/ping_first.py`` answers aigw's ``initialize`` only once its ping
on that reply is answered (hand-written: no SDK server can ping before answering
``initialize``, its docstring says why); the ``mcp`` SDK pyserver with
``--ping-on-list`` pings on every ``tools/list`` reply and answers only once answered
(an error after 10 s).  aigw in between, the ``mcp`` SDK client in front; ``aigw
doctor`` probing both.  Before, the pings on ``initialize`` and on the doctor's
``tools/list`` went unanswered: the backend was left out of every session after its
timeout, and the doctor said ``tools/list failed``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .aigw import Gateway, aigw_command, start_gateway
from .harness.oauth_client import connect_plain
from .harness.processes import Process
from .harness.upstreams import Upstream, start_pyserver, start_twisted_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def ping_first() -> Iterator[str]:
    """The URL of ``ping_first``'s MCP endpoint."""
    process: Process = start_twisted_upstream("ping_first")
    try:
        assert process.ready_match is not None
        yield process.ready_match.group(1) + "/mcp"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def pinging_pyserver() -> Iterator[Upstream]:
    upstream = start_pyserver(extra_args=["--ping-on-list"])
    try:
        yield upstream
    finally:
        upstream.process.stop()


@pytest.fixture(scope="module")
def gateway(ping_first: str, pinging_pyserver: Upstream) -> Iterator[Gateway]:
    started = start_gateway([("first", ping_first), ("py", pinging_pyserver.url)])
    try:
        yield started
    finally:
        started.stop()


async def test_a_backend_pinging_during_initialize_joins_the_session(gateway: Gateway) -> None:
    """``first`` answers aigw's ``initialize`` only once aigw answered its ping there,
    with the session id of that reply's head: its tool is listed.  ``py``'s ping on
    the reply of the ``tools/list`` aigw sends it for the client's listing is answered
    too (``Exchange.ask``), or it would list nothing."""
    async with connect_plain(gateway.url, mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        echoed = await client.call_tool("py__echo", {"text": "still here"})
    assert "first__hello" in names, sorted(names)
    assert "py__echo" in names, sorted(names)
    assert echoed.content[0].text == "still here"  # type: ignore[union-attr]


async def test_doctor_answers_pings_of_its_own_probes(gateway: Gateway) -> None:
    """``aigw doctor`` opens each backend and lists its tools itself: ``first``'s ping
    on ``initialize`` and ``py``'s on ``tools/list`` are answered, so neither is taken
    for a broken backend."""
    done = await aigw_command("doctor", gateway.config_path)
    lines = [*done.stdout.decode().splitlines(), *done.stderr.decode().splitlines()]
    text = "\n".join(lines)
    assert any(each.startswith("ok    backend first:") for each in lines), text
    assert any(each.startswith("ok    tools first: 1 tool") for each in lines), text
    assert any(each.startswith("ok    tools py:") for each in lines), text
