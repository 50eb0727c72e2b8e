"""A backend whose streams and replies are built to hurt (docs/security.md "Backends'
streams and replies"): its client keeps being served, aigw's log has no traceback and
its memory stays bounded.

Real parts: ``upstreams/hostile_streams.py`` (its docstring lists what it sends: floods
of pings and of requests with ids that are no ids on the replies of aigw's own
``initialize`` and ``tools/list``, answers refused or never taken, a GET stream of
malformed SSE and huge, changing ids that ends at once, then 200 JSON, then 409, in
turn), the ``mcp`` SDK pyserver as the healthy backend, the real aigw, and the ``mcp``
SDK client, which initializes, lists, keeps its GET stream open and calls a tool of
each backend.  A raw GET stream resuming from a forged ``Last-Event-ID`` (in the
unsealed format aigw wrote before ``sealed/event_id.py``) is served from nowhere, the
forgery counted and logged, and reads the merged ids aigw writes: bounded, ASCII.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.upstreams.hostile_streams import AFTER_THE_GARBAGE

from .aigw import Gateway, open_session, start_gateway
from .harness.oauth_client import connect_plain
from .harness.processes import until_async
from .harness.results import text_of
from .harness.upstreams import Upstream, serving_twisted_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

MiB = 1024 * 1024
#: aigw's RSS growth over the test (docs/security.md): the floods are megabytes each, and
#: none of it may stay.
RSS_BOUND = 48 * MiB
#: ``sealed/event_id.py`` MAX_EVENT_ID_BYTES and MAX_BACKEND_EVENT_ID, ``gateway/streams.py``
#: BACKOFF_FIRST.
MAX_EVENT_ID_BYTES = 4096
MAX_BACKEND_EVENT_ID = 511
BACKOFF_FIRST = 0.5


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    """The base URL of ``hostile_streams``."""
    with serving_twisted_upstream("hostile_streams") as url:
        yield url


@pytest.fixture(scope="module")
def gateway(hostile: str, pyserver: Upstream) -> Iterator[Gateway]:
    bad = f"  - name: bad\n    url: {hostile}/mcp\n    timeout: 3s\n"
    started = start_gateway(
        [("py", pyserver.url)], more_backends=bad, log_level="info", metrics=True
    )
    try:
        yield started
    finally:
        started.stop()


def stats(hostile: str) -> dict[str, int]:
    reply = httpx2.get(f"{hostile}/stats", timeout=10)
    counts: dict[str, int] = reply.json()
    return counts


def forged(value: Any) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_stream(gateway: Gateway, last_event_id: str) -> tuple[int, list[bytes], bool]:
    """A raw GET stream of a new session resuming from ``last_event_id``: its status, the
    ids aigw wrote on it, and whether ``bad``'s last words came, read until they do (at
    most 60 s of the stream)."""
    headers = {**open_session(gateway.url), "Accept": "text/event-stream"}
    headers["Last-Event-ID"] = last_event_id
    ids: list[bytes] = []
    deadline = time.monotonic() + 60
    with httpx2.stream("GET", gateway.url, headers=headers, timeout=60) as response:
        if response.status_code != 200:
            return response.status_code, ids, False
        for line in response.iter_lines():
            if line.startswith("id:"):
                ids.append(line[3:].strip().encode())
            if AFTER_THE_GARBAGE in line:
                return 200, ids, True
            if time.monotonic() > deadline:
                break
    return 200, ids, False


async def test_a_hostile_backend_leaves_its_client_served(gateway: Gateway, hostile: str) -> None:
    before = gateway.rss()
    started = time.monotonic()
    heard: list[Any] = []
    last_words = anyio.Event()

    async def logging(params: Any) -> None:
        heard.append(params.data)
        if params.data == AFTER_THE_GARBAGE:
            last_words.set()

    async with connect_plain(gateway.url, mode="legacy", logging_callback=logging) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"bad__hello", "py__echo"} <= names, sorted(names)
        echoed = await client.call_tool("py__echo", {"text": "still here"})
        assert text_of(echoed) == "still here"
        assert text_of(await client.call_tool("bad__hello", {})) == "hello"
        # The GET stream aigw follows: its garbage skipped, its one good message relayed.
        with anyio.fail_after(60):
            await last_words.wait()
        # It ends at once, then 200 JSON, then 409: followed ever more slowly, and opened
        # anew: its last id, 100 kB, is too long to resume from (UpstreamFeed._resume_from).
        # (Without that, each GET carried the 100 kB id, and Twisted's server under bad
        # dropped it for its head line's length before counting it: gets stayed at 1.)
        assert await until_async(lambda: stats(hostile)["gets"] >= 5, 60), stats(hostile)
        assert stats(hostile)["longest_resume"] <= MAX_BACKEND_EVENT_ID, stats(hostile)
        echoed = await client.call_tool("py__echo", {"text": "and still"})
        assert text_of(echoed) == "and still"
    gets = stats(hostile)["gets"]
    elapsed = time.monotonic() - started
    # With the back-off doubling from BACKOFF_FIRST, n streams take at least
    # BACKOFF_FIRST * (2 ** (n - 1) - 1) seconds (one client stream: one feed).
    assert gets <= 2 + math.log2(elapsed / BACKOFF_FIRST + 1), (gets, elapsed)

    # Forged ids: what aigw did not seal for the session is none (EventIdCodec.decode);
    # the stream is served, and every id written on it is bounded ASCII, whatever bad
    # sends.
    for forgery in (
        forged({"bad": "x\r\nInjected: 1", "py": "\u0000"}),
        forged({"bad": "h" * 5000}),
    ):
        status, ids, arrived = read_stream(gateway, forgery)
        assert status == 200, (forgery[:80], status)
        assert arrived, (forgery[:80], ids[-3:])
        assert ids, forgery[:80]
        assert all(len(i) <= MAX_EVENT_ID_BYTES and i.isascii() for i in ids), [len(i) for i in ids]
    for junk in (forged([[[[{"bad": "x"}]]]]), "not base64 \u00e9", "A" * 100_000):
        headers = {**open_session(gateway.url), "Accept": "text/event-stream"}
        headers["Last-Event-ID"] = junk.encode("utf-8")  # type: ignore[assignment]
        with httpx2.stream("GET", gateway.url, headers=headers, timeout=30) as response:
            assert response.status_code in (200, 431), (junk[:40], response.status_code)
    log = gateway.process.log()
    assert "Last-Event-ID(s) refused" in log, gateway.process.log_tail(80)
    assert log.count("too long to resume from") == 1, gateway.process.log_tail(80)
    # The two forgeries and the junk ids that reached the gateway (a 431 did not).
    refused = gateway.metric("aigw_refused_event_ids_total")
    assert (refused or 0) >= 3, refused
    assert "Traceback" not in log, gateway.process.log_tail(80)
    assert "Unhandled" not in log, gateway.process.log_tail(80)
    assert gateway.rss() - before < RSS_BOUND, (before, gateway.rss())
    assert stats(hostile)["answers"] > 0  # the pongs and refusals were tried, and refused
