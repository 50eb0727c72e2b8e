"""A backend that ends its GET stream on purpose, to be polled (MCP 2025-11-25
basic/transports, SEP-1699: a server MAY close the stream once it sent an event id; the
client reconnects after the stream's ``retry`` with ``Last-Event-ID``), is followed again
after its ``retry`` each time, and what it sent meanwhile comes once, in order.

Real parts: the ``mcp`` SDK's server with an event store and a ``retry`` of 300 ms
(``pyserver --event-store --retry-interval 300``), whose ``close-stream`` tool closes the
session's GET stream (``Context.close_standalone_sse_stream``) and ``notify-stream`` sends
a notification on it; aigw in between; the ``mcp`` SDK client in front, its GET stream
open.  Six times in a row the backend closes its stream and then notifies while no stream
is open.  Before, every close grew aigw's back-off (0.5, 1, 2, 4, 8, 16 s: a stream that
ended at once counted as a failure), so the fifth notification waited 8 s, past this
test's bound of 6 s for each; now each comes after about the 300 ms ``retry``, the bound
a margin of many times that.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .aigw import Gateway, start_gateway
from .harness.oauth_client import connect_plain
from .harness.processes import until_async
from .harness.results import Numbers, text_of
from .harness.upstreams import Upstream, start_pyserver
from .upstreams.replay import GET_LINE

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

#: The backend's SSE ``retry``, in milliseconds.
RETRY_MS = 300
#: How many times the backend closes its stream.
CLOSES = 6
#: The longest a notification may take to come after its stream was closed: past the
#: fifth step of the old back-off (8 s), many times the 300 ms ``retry``.
EACH_WITHIN = 6.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def polled_backend() -> Iterator[Upstream]:
    upstream = start_pyserver(extra_args=["--event-store", f"--retry-interval={RETRY_MS}"])
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture(scope="module")
def gateway(polled_backend: Upstream) -> Iterator[Gateway]:
    started = start_gateway([("py", polled_backend.url)])
    try:
        yield started
    finally:
        started.stop()


def resumed_from(log: str) -> list[str]:
    """The ``Last-Event-ID`` of each GET the backend took, in order (``(none)``: none)."""
    return [line.split(GET_LINE, 1)[1].strip() for line in log.splitlines() if GET_LINE in line]


async def test_a_backend_polled_on_purpose_is_followed_after_its_retry(
    polled_backend: Upstream, gateway: Gateway
) -> None:
    numbers = Numbers()
    before = len(resumed_from(polled_backend.process.log()))
    async with connect_plain(gateway.url, mode="legacy", message_handler=numbers) as client:
        gets = await until_async(
            lambda: len(resumed_from(polled_backend.process.log())) > before, 30
        )
        assert gets, "aigw never opened the backend's GET stream"
        for n in range(1, CLOSES + 1):
            assert text_of(await client.call_tool("py__close-stream", {})) == "closed"
            assert text_of(await client.call_tool("py__notify-stream", {"n": n})) == f"sent {n}"
            arrived = await until_async(lambda n=n: n in numbers.got, EACH_WITHIN)
            assert arrived, f"notification {n} not in {EACH_WITHIN} s: {numbers.got}"
    assert numbers.got == list(range(1, CLOSES + 1)), numbers.got  # each once, in order
    taken = resumed_from(polled_backend.process.log())[before:]
    assert len(taken) >= CLOSES + 1, taken
    assert all(each != "(none)" for each in taken[1:]), taken  # every reconnect resumed
    print(f"{CLOSES} closes, GETs resumed from: {taken[1:]}")
