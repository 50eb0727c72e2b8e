"""The bridge between the two MCP eras for a backend's questions to the client
(sampling, elicitation, roots), with the official ``mcp`` SDK at both ends.

* A session client (``mode="legacy"``, 2025-11-25) over a 2026-07-28-only server
  whose resolvers answer ``input_required`` (basic/patterns/mrtr): aigw asks the
  client on the call's stream and retries with its answers (``gateway/asking.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from .aigw import Gateway, start_gateway
from .harness.oauth_client import connect_plain
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def gateway(pyserver_modern: Upstream) -> Iterator[Gateway]:
    started = start_gateway([("modern", pyserver_modern.url)])
    try:
        yield started
    finally:
        started.stop()


class Answers:
    """The client's side of every question, and what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def sampling(self, context: Any, params: Any) -> types.CreateMessageResult:
        self.asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="four"), model="t"
        )

    async def elicitation(self, context: Any, params: Any) -> types.ElicitResult:
        self.asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def roots(self, context: Any) -> types.ListRootsResult:
        self.asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project")])

    def callbacks(self) -> dict[str, Any]:
        return {
            "sampling_callback": self.sampling,
            "elicitation_callback": self.elicitation,
            "list_roots_callback": self.roots,
        }


async def test_a_session_client_answers_a_2026_backends_input_required(gateway: Gateway) -> None:
    """Sampling, elicitation and roots asked by a 2026-07-28 server's resolvers reach a
    2025-11-25 client as requests on its call's stream; its answers complete the calls."""
    answers = Answers()
    async with connect_plain(gateway.url, mode="legacy", **answers.callbacks()) as client:
        assert client.protocol_version == "2025-11-25"
        with anyio.fail_after(30):
            llm = await client.call_tool("modern__resolve-llm", {})
            name = await client.call_tool("modern__resolve-user", {})
            roots = await client.call_tool("modern__resolve-roots", {})
    assert "llm said: four" in text_of(llm), llm
    assert "hello Ada" in text_of(name), name
    assert "file:///work/project" in text_of(roots), roots
    assert answers.asked == ["sampling", "elicitation", "roots"]


async def test_a_session_client_without_the_capability_is_refused_precisely(
    gateway: Gateway,
) -> None:
    """A client that declared no elicitation: the backend is told so and may not ask
    (mrtr "Server Requirements" 7); the call fails with -32021 naming the capability."""
    async with connect_plain(gateway.url, mode="legacy") as client:
        with anyio.fail_after(30), pytest.raises(MCPError) as caught:
            await client.call_tool("modern__resolve-user", {})
    assert caught.value.error.code == -32021, caught.value.error
    assert "elicitation" in caught.value.error.message
