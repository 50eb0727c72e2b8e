"""The bounds of the questions aigw asks a session client for a 2026-07-28 backend
(``sessions.input_max_rounds``, ``sessions.input_timeout``), end to end.

A 2026-07-28 server asks with an ``input_required`` result (basic/patterns/mrtr); a
session client (2025-11-25) is asked each question as a request on its call's stream
by aigw, which retries the call with the answers (``gateway/asking.py``).  Client: the
official MCP Python SDK in ``mode="legacy"``.  Backend: the ``mcp`` SDK server serving
2026-07-28 only, whose ``resolve-user`` asks one round and ``ask-twice`` two.
"""

from __future__ import annotations

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


class Answers:
    """An elicitation callback answering "Ada" once ``release`` is set; how often asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.release = anyio.Event()

    async def __call__(self, context: Any, params: Any) -> types.ElicitResult:
        self.asked += 1
        await self.release.wait()
        return types.ElicitResult(action="accept", content={"name": "Ada"})


async def call(gateway: Gateway, tool: str, answers: Answers) -> str:
    """``modern__<tool>`` from a session client: its text, or the error it was answered."""
    async with connect_plain(gateway.url, mode="legacy", elicitation_callback=answers) as client:
        try:
            return text_of(await client.call_tool(f"modern__{tool}", {}))
        except MCPError as error:
            return f"{error.error.code} {error.error.message} {error.error.data}"
        finally:
            answers.release.set()  # a question still held lets the client close


@pytest.fixture
def one_round(pyserver_modern: Upstream) -> Iterator[Gateway]:
    yield from serving_gateway([("modern", pyserver_modern.url)], sessions=", input_max_rounds: 1")


async def test_input_max_rounds_refuses_a_backend_that_asks_once_more(one_round: Gateway) -> None:
    """``input_max_rounds: 1``: one round is asked and answered; a second is not asked,
    the call fails with -32600 naming the key (``data.reason`` ``input_rounds``)."""
    once, twice = Answers(), Answers()
    once.release.set()
    twice.release.set()
    with anyio.fail_after(30):
        assert await call(one_round, "resolve-user", once) == "hello Ada"
        refused = await call(one_round, "ask-twice", twice)
    assert once.asked == 1
    assert twice.asked == 1
    assert refused.startswith("-32600 "), refused
    assert "sessions.input_max_rounds" in refused, refused
    assert "'reason': 'input_rounds'" in refused, refused


@pytest.fixture
def short_input(pyserver_modern: Upstream) -> Iterator[Gateway]:
    yield from serving_gateway([("modern", pyserver_modern.url)], sessions=", input_timeout: 1s")


async def test_input_timeout_fails_a_call_whose_client_does_not_answer(
    short_input: Gateway,
) -> None:
    """``input_timeout: 1s``: a question the client holds unanswered fails the call with
    -32600 naming the key (``data.reason`` ``input_timeout``), while still held."""
    held = Answers()
    with anyio.fail_after(30):
        failed = await call(short_input, "resolve-user", held)
    assert held.asked == 1
    assert failed.startswith("-32600 "), failed
    assert "sessions.input_timeout" in failed, failed
    assert "'reason': 'input_timeout'" in failed, failed
