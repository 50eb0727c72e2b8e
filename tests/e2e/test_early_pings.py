"""A backend's ping on the reply of a request aigw makes on its own, before or outside
any client session: answered at once (basic/utilities/ping: the receiver "MUST respond
promptly"; ``gateway/exchange.py`` ``OwnCollector``); another request there refused at
once (``own_request``); and answers that never wait behind the requests they unblock
(``UpstreamTransport.respond``).

Real parts: ``upstreams/ping_first.py`` answers aigw's ``initialize`` only once its ping
and then its ``roots/list`` on that reply are answered (hand-written: no SDK server can
ask before answering ``initialize``, its docstring says why); the ``mcp`` SDK pyserver
with ``--ping-on-list`` pings on every ``tools/list`` reply and answers only once
answered (an error after 10 s), and its ``ping-client`` tool pings on the call's
stream.  aigw in between, the ``mcp`` SDK client in front; ``aigw doctor`` probing
both.  Before, the pings on ``initialize`` and on the doctor's ``tools/list`` went
unanswered, and then the ``roots/list``: the backend was left out of every session
after its timeout, and the doctor said ``tools/list failed``; and behind
``max_connections: 1`` a pinging call held the one slot its pong waited for.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from .aigw import Gateway, aigw_command, start_gateway
from .harness.oauth_client import connect_plain
from .harness.upstreams import Upstream, serving_twisted_upstream, start_pyserver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def ping_first() -> Iterator[str]:
    """The URL of ``ping_first``'s MCP endpoint."""
    with serving_twisted_upstream("ping_first") as url:
        yield url + "/mcp"


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


@pytest.fixture(scope="module")
def narrow_gateway(pinging_pyserver: Upstream) -> Iterator[Gateway]:
    """``py`` behind one request slot (``max_connections: 1``)."""
    started = start_gateway([("py", pinging_pyserver.url, "max_connections: 1")])
    try:
        yield started
    finally:
        started.stop()


async def test_a_backend_pinging_during_initialize_joins_the_session(gateway: Gateway) -> None:
    """``first`` answers aigw's ``initialize`` only once aigw answered its ping there,
    with the session id of that reply's head, and refused its ``roots/list``: its tool
    is listed.  ``py``'s ping on
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


async def test_pings_behind_the_only_request_slot_are_answered(narrow_gateway: Gateway) -> None:
    """``py`` has one request slot, held by the request whose reply pings (the
    ``tools/list`` aigw sends for the listing, then each of two concurrent
    ``ping-client`` calls): the pongs take slots of their own, so the listing has the
    tools and both calls say ``pong`` rather than "no answer within 10 s"."""
    async with connect_plain(narrow_gateway.url, mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        said: list[str] = []

        async def ping_client() -> None:
            result = await client.call_tool("py__ping-client", {})
            said.append(result.content[0].text)  # type: ignore[union-attr]

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(ping_client)
                group.start_soon(ping_client)
    assert "py__ping-client" in names, sorted(names)
    assert said == ["pong {}", "pong {}"], said
