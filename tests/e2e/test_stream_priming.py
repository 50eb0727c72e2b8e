"""A backend's priming event reaches the client's merged event id (MCP 2025-11-25
basic/transports "Sending Messages to the Server", SEP-1699), through the production
shape: HAProxy on the shipped config in front of three aigw processes sharing the
session key, and the MCP Python SDK's server with an event store (``pyserver
--event-store``, whose GET streams are primed: ``upstreams/replay.py``) as the backend.

A real SDK client (``mcp`` 2.3) opens its GET stream and the backend primes its own:
aigw writes on an event of empty data whose id (every backend's last event id) now names
the backend's priming id, and the client keeps it.  Before any message, the process
holding the stream is stopped (SIGTERM, the graceful stop); the backend sends a
notification while no stream is open; the client reconnects after
``sessions.stream_retry`` with its last event id, HAProxy sends it to another process,
which resumes the backend from the priming id: the notification comes, once.  Had the
id not named the backend, its stream would be opened afresh and the notification lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest

from aigw.gateway.streams import decode_event_ids

from .balancer import start_balanced
from .harness.oauth_client import connect_plain
from .harness.processes import until_async
from .harness.results import Numbers, text_of
from .harness.routing import StreamIds
from .harness.upstreams import Upstream, start_pyserver
from .upstreams.replay import GET_LINE

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(150)]

#: ``sessions.stream_retry``, in seconds.
RETRY = 2.0
#: The backend's name in aigw's config, its key in the merged event ids.
BACKEND = "py"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def primed_backend() -> Iterator[Upstream]:
    upstream = start_pyserver(extra_args=["--event-store"])
    try:
        yield upstream
    finally:
        upstream.stop()


def backend_ids(merged: list[str]) -> list[str]:
    """The backend's event ids that the client's (merged) event ids named, in order,
    each once."""
    named: list[str] = []
    for value in merged:
        backend = decode_event_ids(value, {BACKEND}).get(BACKEND)
        if backend is not None and backend not in named:
            named.append(backend)
    return named


async def test_a_client_back_before_any_message_gets_what_the_backend_sent_meanwhile(
    primed_backend: Upstream,
) -> None:
    numbers = Numbers()
    stream_ids = StreamIds()
    sessions = f", stream_retry: {RETRY:g}s"
    with start_balanced([(BACKEND, primed_backend.url)], sessions=sessions) as balanced:
        began = len(balanced.logged())
        async with connect_plain(
            balanced.url, mode="legacy", message_handler=numbers, transport=stream_ids
        ) as client:

            async def notify(n: int) -> None:
                said = text_of(await client.call_tool(f"{BACKEND}__notify-stream", {"n": n}))
                assert said == f"sent {n}"

            async def arrived(n: int) -> None:
                assert await until_async(lambda: n in numbers.got, 30), numbers.got

            (held,) = await until_async(partial(balanced.gets_since, began))
            primed = await until_async(lambda: backend_ids(stream_ids.ids), 30)
            assert primed, f"no event id the client read named the backend: {stream_ids.ids}"
            assert numbers.got == []  # the id came before any message
            cut = len(balanced.logged())
            await balanced.stop_the_holder(held)
            await notify(1)  # no client stream open: the backend keeps it for a resume
            (reopened,) = await until_async(partial(balanced.gets_since, cut), 30)
            await arrived(1)
            await notify(2)
            await arrived(2)
    assert reopened.status == "200", reopened
    assert reopened.server != held.server, (held, reopened)
    assert numbers.got == [1, 2], numbers.got  # each once, in order
    assert f"{GET_LINE} {primed[0]}\n" in primed_backend.process.log()  # resumed from it
    print(f"GET {held.server} -> {reopened.server}, resumed from {primed[0]}: {numbers.got}")
