"""The bridge between the two MCP eras for a backend's questions to the client
(sampling, elicitation, roots), with the official ``mcp`` SDK at both ends.

* A session client (``mode="legacy"``, 2025-11-25) over a 2026-07-28-only server
  whose resolvers answer ``input_required`` (basic/patterns/mrtr): aigw asks the
  client on the call's stream and retries with its answers (``gateway/asking.py``).
* A 2026-07-28 client over session servers (the ``mcp`` SDK stateful, server-everything)
  that ask mid-call: aigw answers ``input_required`` with its own ``requestState``,
  parks the upstream call and resumes it with the client's retry (``gateway/parking.py``).
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
def gateway(
    pyserver_modern: Upstream, pyserver: Upstream, server_everything: Upstream
) -> Iterator[Gateway]:
    started = start_gateway(
        [
            ("modern", pyserver_modern.url),
            ("py", pyserver.url),
            ("everything", server_everything.url),
        ]
    )
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
    # (server-everything asks every session client for its roots as it initializes.)
    assert [a for a in answers.asked if a != "roots"] == ["sampling", "elicitation"]


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


async def test_a_2026_client_answers_a_session_backends_questions(gateway: Gateway) -> None:
    """The SDK's resolvers and its mid-call requests (``ask-llm``) on a stateful server,
    server-everything's sampling and elicitation tools: each question reaches the
    2026-07-28 client as input_required, and its retry completes the parked call."""
    answers = Answers()
    async with connect_plain(gateway.url, mode="2026-07-28", **answers.callbacks()) as client:
        assert client.protocol_version == "2026-07-28"
        with anyio.fail_after(60):
            llm = await client.call_tool("py__resolve-llm", {})
            name = await client.call_tool("py__resolve-user", {})
            roots = await client.call_tool("py__resolve-roots", {})
            asked = await client.call_tool("py__ask-llm", {})
            sampled = await client.call_tool(
                "everything__trigger-sampling-request", {"prompt": "2+2?", "maxTokens": 10}
            )
            elicited = await client.call_tool("everything__trigger-elicitation-request", {})
    assert "llm said: four" in text_of(llm), llm
    assert "hello Ada" in text_of(name), name
    assert "file:///work/project" in text_of(roots), roots
    assert "llm said: four" in text_of(asked), asked
    assert "four" in text_of(sampled), sampled
    assert "Ada" in text_of(elicited), elicited
    assert answers.asked == [
        "sampling",
        "elicitation",
        "roots",
        "sampling",
        "sampling",
        "elicitation",
    ], answers.asked


async def test_a_2026_client_without_the_capability_is_not_asked(gateway: Gateway) -> None:
    """mrtr "Server Requirements" 7: a 2026-07-28 client that declared no sampling is
    not asked; the backend's question is refused, naming the capability."""
    async with connect_plain(gateway.url, mode="2026-07-28") as client:
        with anyio.fail_after(30):
            try:
                result = await client.call_tool("py__ask-llm", {})
                text = text_of(result)
            except MCPError as error:
                text = error.error.message
    assert "did not declare sampling" in text, text
