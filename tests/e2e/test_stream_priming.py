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

The merged id is sealed and bound to its session (``sealed/event_id.py``): the client
sees no backend's id in it, so the test reads what the backend was asked to resume from
in the backend's own log (``GET_LINE``).  The backend's event store is one for every
session, with ids one can guess, as the SDK's example's: a second client sending the
first one's real merged id on its own session's GET gets its backend stream opened
fresh (``(none)`` in that log), not the first one's events replayed (2025-11-25
basic/transports "Resumability and Redelivery": "The server MUST NOT replay messages
that would have been delivered on a different stream").
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import httpx2
import pytest
from mcp.server.streamable_http import GET_STREAM_KEY

from .aigw import open_session, start_gateway
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


def asked(upstream: Upstream, since: int = 0) -> list[str]:
    """What each GET the backend got since its ``since``-th asked it to resume from (its
    ``Last-Event-ID``, or ``(none)``), in order."""
    lines = upstream.process.log().splitlines()
    return [line[len(GET_LINE) + 1 :] for line in lines if line.startswith(GET_LINE)][since:]


async def test_a_client_back_before_any_message_gets_what_the_backend_sent_meanwhile(
    primed_backend: Upstream,
) -> None:
    numbers = Numbers()
    stream_ids = StreamIds()
    sessions = f", stream_retry: {RETRY:g}s"
    with start_balanced([(BACKEND, primed_backend.url)], sessions=sessions) as balanced:
        began = len(balanced.logged())
        gets = len(asked(primed_backend))
        async with connect_plain(
            balanced.url, mode="legacy", message_handler=numbers, transport=stream_ids
        ) as client:

            async def notify(n: int) -> None:
                said = text_of(await client.call_tool(f"{BACKEND}__notify-stream", {"n": n}))
                assert said == f"sent {n}"

            async def arrived(n: int) -> None:
                assert await until_async(lambda: n in numbers.got, 30), numbers.got

            (held,) = await until_async(partial(balanced.gets_since, began))
            # aigw's priming event, then the one whose id names the backend's priming id
            # (each id aigw writes is a new one: sealed with a random nonce).
            primed = await until_async(lambda: len(set(stream_ids.ids)) >= 2, 30)
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
    # The backend's one stream opened fresh, then resumed from the one id it sent on it
    # before notification 1: its priming id.
    first, resumed = asked(primed_backend, gets)
    assert first == "(none)", asked(primed_backend, gets)
    assert resumed.startswith(f"{GET_STREAM_KEY}:"), asked(primed_backend, gets)
    print(f"GET {held.server} -> {reopened.server}, resumed from {resumed}: {numbers.got}")


async def test_another_sessions_merged_id_resumes_nothing_of_it(primed_backend: Upstream) -> None:
    """Session A's real merged id, sent as ``Last-Event-ID`` on session B's GET: B's
    backend stream opens fresh.  Before aigw sealed the id, the backend got A's id, and
    its store (one for every session) replayed A's notification to B."""
    gateway = start_gateway([(BACKEND, primed_backend.url)])
    try:
        numbers = Numbers()
        stream_ids = StreamIds()
        gets = len(asked(primed_backend))
        async with connect_plain(
            gateway.url, mode="legacy", message_handler=numbers, transport=stream_ids
        ) as client:
            assert await until_async(lambda: len(set(stream_ids.ids)) >= 2, 30), stream_ids.ids
            stolen = stream_ids.ids[1]  # names A's priming id: what follows is A's
            said = text_of(await client.call_tool(f"{BACKEND}__notify-stream", {"n": 7}))
            assert said == "sent 7"
            assert await until_async(lambda: numbers.got == [7], 30), numbers.got
            assert asked(primed_backend, gets) == ["(none)"]
            headers = {**open_session(gateway.url), "Accept": "text/event-stream"}
            headers["Last-Event-ID"] = stolen
            async with (
                httpx2.AsyncClient(timeout=30) as http,
                http.stream("GET", gateway.url, headers=headers) as response,
            ):
                assert response.status_code == 200
                assert await until_async(lambda: len(asked(primed_backend, gets)) == 2, 30)
        assert asked(primed_backend, gets) == ["(none)", "(none)"]
        assert "Last-Event-ID(s) refused" in gateway.process.log(), gateway.process.log_tail(40)
    finally:
        gateway.stop()
