"""The bounds of parked calls (``sessions.max_parked``, ``sessions.park_timeout``),
end to end.

A session backend's question mid-call to a 2026-07-28 client parks the call in aigw
(``gateway/parking.py``) until the client retries with its answer (basic/patterns/mrtr).
Client: the official MCP Python SDK pinned to 2026-07-28, whose elicitation callback
holds the question for as long as the test says.  Backend: the ``mcp`` SDK server
(stateful), whose ``ask-user`` tool elicits the user's name mid-call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from .aigw import Gateway, serving_gateway
from .harness.oauth_client import connect_plain
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class HeldAnswer:
    """An elicitation callback that answers "Ada" once ``release`` is set."""

    def __init__(self) -> None:
        self.asked = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, context: Any, params: Any) -> types.ElicitResult:
        self.asked.set()
        await self.release.wait()
        return types.ElicitResult(action="accept", content={"name": "Ada"})


async def ask_user(gateway: Gateway, answer: HeldAnswer) -> str:
    """``py__ask-user`` from a 2026-07-28 client: the tool's text, or the error's message."""
    async with connect_plain(gateway.url, mode="2026-07-28", elicitation_callback=answer) as client:
        try:
            return text_of(await client.call_tool("py__ask-user", {}))
        except MCPError as error:
            return f"{error.error.code} {error.error.message} {error.error.data}"


@pytest.fixture
def one_parked(pyserver: Upstream) -> Iterator[Gateway]:
    yield from serving_gateway([("py", pyserver.url)], sessions=", max_parked: 1")


async def test_max_parked_refuses_the_next_question_until_a_parked_call_ends(
    one_parked: Gateway,
) -> None:
    """``max_parked: 1``: while one call is parked, another backend question is refused
    (-32601, ``parked_calls_full``, naming the key) instead of parking a second call;
    once the first is answered, the next question parks and is answered again."""
    first, second = HeldAnswer(), HeldAnswer()
    second.release.set()
    texts: list[str] = []

    async def held_call() -> None:
        texts.append(await ask_user(one_parked, first))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(held_call)
            await first.asked.wait()  # parked: its input_required is in the client's hands
            refused = await ask_user(one_parked, second)
            assert "sessions.max_parked" in refused, refused
            assert not second.asked.is_set()
            first.release.set()
        assert texts == ["hello Ada"]
        assert await ask_user(one_parked, second) == "hello Ada"
        assert second.asked.is_set()


@pytest.fixture
def short_park(own_pyserver: Upstream) -> Iterator[Gateway]:
    yield from serving_gateway([("py", own_pyserver.url)], sessions=", park_timeout: 1s")


async def asks_cancelled(gateway: Gateway) -> int:
    """How many ``ask-user`` calls the backend saw cancelled (its ``slow-stats``)."""
    async with connect_plain(gateway.url, mode="2026-07-28") as client:
        stats = await client.call_tool("py__slow-stats", {})
    return int(json.loads(text_of(stats))["asks_cancelled"])


async def test_park_timeout_gives_up_a_call_whose_retry_does_not_come(
    short_park: Gateway,
) -> None:
    """``park_timeout: 1s``: a parked call the client does not retry within it is
    cancelled at the backend (basic/utilities/cancellation), and the late retry is
    refused (-32602) instead of resuming it."""
    late = HeldAnswer()
    cancelled = 0
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:

            async def release_once_given_up() -> None:
                nonlocal cancelled
                await late.asked.wait()
                for _ in range(100):
                    cancelled = await asks_cancelled(short_park)
                    if cancelled:
                        break
                    await anyio.sleep(0.1)
                late.release.set()

            group.start_soon(release_once_given_up)
            text = await ask_user(short_park, late)
    assert cancelled == 1
    assert text.startswith("-32602 "), text
    assert "invalid_request_state" in text or "parked_call_gone" in text, text
