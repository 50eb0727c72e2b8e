"""A 2026-07-28 client closing and reopening its ``subscriptions/listen`` at once, through
aigw, to server-everything (Streamable HTTP with sessions, the TypeScript SDK's one GET
stream per session: a second gets 409 "Only one SSE stream is allowed per session").

aigw listens for the client on the GET stream of the user's pooled upstream session
(2025-11-25 basic/transports "Listening for Messages from the Server"; 2026-07-28
basic/patterns/subscriptions).  When the client's listen closes, that upstream stream
lingers (``backends[].stream_linger``) for the next listen, so reopening meets no 409,
and a resource update the backend sends while no listen is open reaches the next one
(2026-07-28 listens cannot be resumed, and server-everything keeps no event store).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from .aigw import Gateway, start_gateway
from .harness.oauth_client import connect_plain
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

#: How many times the listen is closed and opened again.
REOPENS = 5
#: server-everything's tool that starts (sending one update at once) or stops its
#: periodic updates of the resources the session subscribed to.
TOGGLE = "everything__toggle-subscriber-updates"


@pytest.fixture(scope="module")
def gateway(server_everything: Upstream) -> Iterator[Gateway]:
    started = start_gateway([("everything", server_everything.url)], metrics=True)
    try:
        yield started
    finally:
        started.stop()


async def until_closed(gateway: Gateway) -> None:
    """Until aigw has seen the client's listen go (polled, bounded): what the backend
    sends from then on is held for the next listen, not written to the closed one."""
    for _ in range(200):
        if await anyio.to_thread.run_sync(gateway.metric, "aigw_open_streams") == 0:
            return
        await anyio.sleep(0.1)
    raise AssertionError("aigw still holds the closed listen")


async def test_a_listen_reopened_at_once_gets_what_came_meanwhile_and_no_409(
    gateway: Gateway,
) -> None:
    async with connect_plain(gateway.url, mode="2026-07-28") as client:
        listed = (await client.list_resources()).resources
        uri = next(str(r.uri) for r in listed if str(r.uri).startswith("aigw:everything/"))

        async def one_update() -> None:
            """Updates on (one is sent at once), then off: no periodic ones after it."""
            await client.call_tool(TOGGLE, {})
            await client.call_tool(TOGGLE, {})

        for round_ in range(REOPENS + 1):
            async with client.listen(resource_subscriptions=[uri]) as sub:
                assert list(sub.honored.resource_subscriptions or []) == [uri]
                events = aiter(sub)
                if round_ == 0:
                    event = await _first(one_update, events.__anext__)
                else:
                    # Sent while no listen was open (updates are off since): held by aigw.
                    with anyio.fail_after(60):
                        event = await events.__anext__()
                assert str(event.uri) == uri
            if round_ < REOPENS:
                await until_closed(gateway)
                await one_update()

    log = gateway.process.log()
    conflicts = [line for line in log.splitlines() if "HTTP 409" in line]
    assert conflicts == [], conflicts
    assert "stream from everything lost" not in log, gateway.process.log_tail()


async def _first(trigger: Any, arrived: Any) -> Any:
    """``trigger`` until ``arrived`` returns within 1 s: the first listen's upstream
    stream opens after its acknowledgment, so the first trigger may precede it."""
    for _ in range(30):
        await trigger()
        with anyio.move_on_after(1):
            return await arrived()
    raise AssertionError("no resource update arrived")
