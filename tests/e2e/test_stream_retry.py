"""A GET stream aigw ends tells its client when to come back, and from where (MCP
2025-11-25 basic/transports, SEP-1699), through the production shape: HAProxy on the
shipped config in front of three aigw processes, and ``e2e/resumable.mjs`` (the
TypeScript SDK's server with an event store) as the backend.

The process holding a real SDK client's GET stream is stopped (SIGTERM, the graceful
stop): it ends the stream with an event of the stream's id and ``sessions.stream_retry``
(3 s here, the SDKs' own delay being 1 s).  The client waits that long, reconnects with
the id as ``Last-Event-ID``, HAProxy sends it to another process (the stopped one's
listener is closed), which resumes the backend from the event id: what the backend sent
while no stream was open comes once, in order, and nothing comes twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import pytest

from .balancer import Balanced, start_balanced
from .harness.oauth_client import TsClientRun, connect_plain, ts_client_argv
from .harness.processes import until_async
from .harness.results import Numbers, text_of
from .harness.upstreams import Upstream, start_resumable

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(150)]

#: ``sessions.stream_retry``, in seconds: three times the SDKs' own reconnection delay.
RETRY = 3.0
#: The log line of ``e2e/resumable.mjs`` for a GET that resumes its standalone stream.
RESUMED = "GET stream, Last-Event-ID _GET_stream:"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def resumable(node_modules: None) -> Iterator[Upstream]:
    upstream = start_resumable()
    try:
        yield upstream
    finally:
        upstream.stop()


@contextmanager
def deployment(resumable: Upstream) -> Iterator[Balanced]:
    """Three processes (one of which the test stops) behind HAProxy."""
    with start_balanced(
        [("resumable", resumable.url)], sessions=f", stream_retry: {RETRY:g}s"
    ) as balanced:
        yield balanced


async def test_the_sdk_client_comes_back_after_the_retry_and_loses_nothing(
    resumable: Upstream,
) -> None:
    """The official Python SDK client (``mcp`` 2.3): its GET stream, ended by the stop,
    comes back ``RETRY`` or more after the signal on another process; the messages sent
    while it was away (on the backend's event store) come once, then the live ones."""
    numbers = Numbers()
    with deployment(resumable) as balanced:
        began = len(balanced.logged())
        async with connect_plain(balanced.url, mode="legacy", message_handler=numbers) as client:

            async def notify(n: int) -> None:
                said = text_of(await client.call_tool("resumable__notify", {"n": n}))
                assert said == f"sent {n}"

            async def arrived(n: int) -> None:
                assert await until_async(lambda: n in numbers.got, 30), numbers.got

            (held,) = await until_async(partial(balanced.gets_since, began))
            # aigw's stream to the backend opens after the client's: the first tries may
            # come before it (and are the backend's to keep: nobody resumes from before).
            last = 0
            while not numbers.got:
                last += 1
                assert last <= 30, "the backend's GET stream never reached the client"
                await notify(last)
                await until_async(lambda: bool(numbers.got), 1)
            first = numbers.got[0]
            await arrived(last)
            resumed_before = resumable.process.log().count(RESUMED)
            cut = len(balanced.logged())
            stopped = await balanced.stop_the_holder(held)
            for n in (last + 1, last + 2):  # no client stream open: the backend keeps them
                await notify(n)
            (reopened,) = await until_async(partial(balanced.gets_since, cut), 30)
            seconds = time.monotonic() - stopped
            await arrived(last + 2)
            await notify(last + 3)
            await arrived(last + 3)
    assert reopened.status == "200", reopened
    assert reopened.server != held.server, (held, reopened)
    assert seconds >= RETRY, seconds  # the client waited what aigw said, not its 1 s
    assert numbers.got == list(range(first, last + 4)), numbers.got  # each once, in order
    assert resumable.process.log().count(RESUMED) > resumed_before  # from the client's id
    print(f"python sdk: GET {held.server} -> {reopened.server} {seconds:.2f} s after SIGTERM")


#: ``e2e/ts-client.mjs``'s step that has ``resumable__notify`` called until a
#: ``notifications/message`` arrives (the backend's stream opens after the client's).
FIRST = {
    "op": "notify",
    "method": "notifications/message",
    "trigger": {"name": "resumable__notify", "args": {"n": 0}},
    "tries": 30,
    "waitMs": 1000,
}


def notify(n: int) -> dict[str, Any]:
    return {"op": "call", "name": "resumable__notify", "args": {"n": n}}


def numbers_of(events: list[dict[str, Any]]) -> list[int]:
    """The ``n`` of each ``notifications/message`` the TypeScript client got, past 0."""
    return [
        e["params"]["data"]["n"]
        for e in events
        if e["event"] == "notification" and e["method"] == "notifications/message"
        if e["params"]["data"]["n"] > 0
    ]


async def test_the_ts_sdk_client_comes_back_after_the_retry_and_loses_nothing(
    resumable: Upstream,
) -> None:
    """The official TypeScript SDK client (``e2e/ts-client.mjs``; Claude Code's
    transport): its ``StreamableHTTPClientTransport`` takes the ``retry`` as the delay of
    its reconnections and reconnects a GET stream the server ended cleanly with the
    last event id; it reports no error on the way."""
    script = [FIRST, {"op": "pause"}, notify(1), notify(2), {"op": "pause"}, notify(3)]
    script += [{"op": "pause"}]
    with deployment(resumable) as balanced:
        began = len(balanced.logged())
        run = TsClientRun(ts_client_argv(balanced.url, "alice", script=script), timeout=120)
        try:
            await anyio.to_thread.run_sync(run.until, "paused")
            (held,) = await until_async(partial(balanced.gets_since, began))
            resumed_before = resumable.process.log().count(RESUMED)
            cut = len(balanced.logged())
            stopped = await balanced.stop_the_holder(held)
            run.resume()  # 1 and 2, while no client stream is open
            await anyio.to_thread.run_sync(run.until, "paused")
            (reopened,) = await until_async(partial(balanced.gets_since, cut), 30)
            seconds = time.monotonic() - stopped
            while numbers_of(run.events) != [1, 2]:
                await anyio.to_thread.run_sync(run.until, "notification")
            run.resume()
            await anyio.to_thread.run_sync(run.until, "paused")
            while numbers_of(run.events) != [1, 2, 3]:
                await anyio.to_thread.run_sync(run.until, "notification")
            run.resume()
            events = await anyio.to_thread.run_sync(run.finish)
        finally:
            run.stop()
    assert reopened.status == "200", reopened
    assert reopened.server != held.server, (held, reopened)
    assert seconds >= RETRY, seconds
    assert numbers_of(events) == [1, 2, 3], events
    assert resumable.process.log().count(RESUMED) > resumed_before  # from the client's id
    errors = [e["message"] for e in events if e["event"] == "transport-error"]
    assert errors == [], errors
    print(f"ts sdk: GET {held.server} -> {reopened.server} {seconds:.2f} s after SIGTERM")
