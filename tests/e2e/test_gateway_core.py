"""The gateway core end to end: real upstreams behind aigw, official SDK clients in front.

Upstreams: ``@modelcontextprotocol/server-everything`` (streamableHttp), a
stateful and a stateless server written with the ``mcp`` SDK (one of them
paginating its tools). Clients: the Python SDK in initialize (legacy) mode and
the TypeScript SDK. ``auth: none`` here; OAuth is covered by
test_resource_server.py and, for the TS client, below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from .aigw import Gateway, start_gateway
from .harness.authserver import AuthServer
from .harness.oauth_client import connect_plain, run_ts_client
from .harness.results import ResourceUpdates, text_of
from .harness.upstreams import Upstream, start_pyserver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def gateway(
    server_everything: Upstream,
    pyserver: Upstream,
    pyserver_stateless: Upstream,
    pyserver_many_tools: Upstream,
) -> Iterator[Gateway]:
    started = start_gateway(
        [
            ("everything", server_everything.url),
            ("py", pyserver.url),
            ("stateless", pyserver_stateless.url),
            ("many", pyserver_many_tools.url),
        ]
    )
    try:
        yield started
    finally:
        started.stop()


async def all_tools(client: Any) -> list[str]:
    names: list[str] = []
    cursor = None
    for _ in range(50):
        page = await client.list_tools(cursor=cursor) if cursor else await client.list_tools()
        names.extend(tool.name for tool in page.tools)
        cursor = page.next_cursor
        if not cursor:
            return names
    raise AssertionError("tools/list never ended")


async def test_tool_list_from_every_backend_is_complete_and_deterministic(gateway: Gateway) -> None:
    """Lists fan out and merge in config order; pagination lists every page of every backend."""
    async with connect_plain(gateway.url, mode="legacy") as client:
        first = await all_tools(client)
        second = await all_tools(client)
    assert first == second
    prefixes = [name.split("__", 1)[0] for name in first]
    assert prefixes == sorted(prefixes, key=["everything", "py", "stateless", "many"].index)
    assert "everything__echo" in first
    assert "py__echo" in first
    assert "stateless__echo" in first
    assert sum(1 for name in first if name.startswith("many__t")) == 30


async def test_calls_reach_each_backend(gateway: Gateway) -> None:
    async with connect_plain(gateway.url, mode="legacy") as client:
        result = await client.call_tool("everything__echo", {"message": "hi"})
        assert "hi" in text_of(result)
        assert text_of(await client.call_tool("py__echo", {"text": "py"})) == "py"
        assert text_of(await client.call_tool("stateless__echo", {"text": "st"})) == "st"


async def test_progress_arrives_before_the_result(gateway: Gateway) -> None:
    """basic/utilities/progress relayed incrementally from server-everything's long-running tool."""
    seen: list[tuple[float, float]] = []
    done_at: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((anyio.current_time(), progress))

    async with connect_plain(gateway.url, mode="legacy") as client:
        result = await client.call_tool(
            "everything__trigger-long-running-operation",
            {"duration": 2, "steps": 4},
            progress_callback=on_progress,
        )
        done_at.append(anyio.current_time())
    assert not result.is_error
    assert len(seen) >= 2
    assert seen[0][0] < done_at[0] - 0.5


async def test_prompts_and_resources_are_prefixed_and_routed(gateway: Gateway) -> None:
    async with connect_plain(gateway.url, mode="legacy") as client:
        prompts = await client.list_prompts()
        names = [p.name for p in prompts.prompts]
        assert "py__greet" in names
        got = await client.get_prompt("py__greet", {"name": "Ada"})
        assert "Ada" in json.dumps(got.model_dump(mode="json"))
        resources = await client.list_resources()
        hello = next(r for r in resources.resources if r.name == "hello" and "py" in str(r.uri))
        read = await client.read_resource(hello.uri)
        assert read.contents[0].uri == hello.uri
        templates = await client.list_resource_templates()
        item = next(
            t
            for t in templates.resource_templates
            if "items" in t.uri_template and "py" in t.uri_template
        )
        uri = item.uri_template.replace("{item_id}", "42")
        read = await client.read_resource(uri)
        assert "42" in json.dumps(read.model_dump(mode="json"))


async def test_resource_link_in_a_tool_result_can_be_read_back(gateway: Gateway) -> None:
    async with connect_plain(gateway.url, mode="legacy") as client:
        result = await client.call_tool("py__make-link", {})
        link = next(c for c in result.content if c.type == "resource_link")
        read = await client.read_resource(link.uri)
        assert read.contents


async def test_sampling_and_elicitation_round_trips(gateway: Gateway) -> None:
    """Server-to-client requests are relayed with sealed ids and answered back to their backend."""

    async def sampling(
        context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="four"),
            model="test",
        )

    async def elicitation(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async with connect_plain(
        gateway.url,
        mode="legacy",
        sampling_callback=sampling,
        elicitation_callback=elicitation,
    ) as client:
        assert "four" in text_of(await client.call_tool("py__ask-llm", {}))
        assert "Ada" in text_of(await client.call_tool("py__ask-user", {}))


async def test_unknown_tool_is_a_json_rpc_error(gateway: Gateway) -> None:
    """server/tools "Error Handling": a tool of no backend is -32602 from aigw itself."""
    async with connect_plain(gateway.url, mode="legacy") as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("nosuchbackend__echo", {})
    assert caught.value.error.code == -32602


def test_typescript_sdk_client_lists_and_calls(gateway: Gateway) -> None:
    events = run_ts_client(gateway.url, "alice", call="py__echo", args={"text": "from ts"})
    text = json.dumps(events)
    assert "everything__echo" in text
    assert "from ts" in text


def test_typescript_sdk_client_through_oauth(auth_server: AuthServer, pyserver: Upstream) -> None:
    protected = start_gateway([("py", pyserver.url)], issuer=auth_server.issuer)
    try:
        events = run_ts_client(protected.url, "alice", call="py__echo", args={"text": "ts oauth"})
    finally:
        protected.stop()
    assert "ts oauth" in json.dumps(events)


async def test_stopped_backend_gives_clear_errors_and_comes_back() -> None:
    """One upstream stopped: the others keep working, its calls get a JSON-RPC error naming it."""
    steady = start_pyserver()
    flaky = start_pyserver()
    port = int(flaky.url.rsplit(":", 1)[1].split("/", 1)[0])
    gateway = start_gateway([("steady", steady.url), ("flaky", flaky.url)])
    try:
        async with connect_plain(gateway.url, mode="legacy") as client:
            assert text_of(await client.call_tool("flaky__echo", {"text": "a"})) == "a"
            flaky.stop()
            with pytest.raises(MCPError) as caught:
                await client.call_tool("flaky__echo", {"text": "b"})
            assert "flaky" in caught.value.error.message
            assert text_of(await client.call_tool("steady__echo", {"text": "c"})) == "c"
            names = await all_tools(client)
            assert any(n.startswith("steady__") for n in names)
            flaky = start_pyserver(port=port)
            assert text_of(await client.call_tool("flaky__echo", {"text": "d"})) == "d"
        assert gateway.process.alive
    finally:
        gateway.stop()
        steady.stop()
        flaky.stop()


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_subscription_updates_arrive_on_the_merged_get_stream(gateway: Gateway) -> None:
    """basic/transports "Listening for Messages": backend notifications reach the client's GET
    stream, with the resource URI as the client knows it."""
    updates = ResourceUpdates()

    async with connect_plain(gateway.url, mode="legacy", message_handler=updates) as client:
        resources = await client.list_resources()
        counter = next(
            r.uri for r in resources.resources if str(r.uri).endswith("py/test://counter")
        )
        await client.subscribe_resource(counter)
        await client.call_tool("py__bump", {})
        with anyio.fail_after(10):
            await updates.arrived.wait()
    assert updates.uris == [str(counter)]


async def test_cancellation_reaches_the_backend_holding_the_request(gateway: Gateway) -> None:
    """basic/utilities/cancellation: notifications/cancelled is routed to the right backend."""
    async with connect_plain(gateway.url, mode="legacy") as client:
        stats = await client.call_tool("py__slow-stats", {})
        before = json.loads(text_of(stats))["cancelled"]
        with anyio.move_on_after(0.7):
            await client.call_tool("py__slow", {"seconds": 5, "steps": 5})
        with anyio.fail_after(10):
            while True:
                stats = await client.call_tool("py__slow-stats", {})
                if json.loads(text_of(stats))["cancelled"] > before:
                    break
                await anyio.sleep(0.1)


async def test_sdk_default_auto_mode_discovers_and_stays_on_2026_07_28(gateway: Gateway) -> None:
    """The mcp 2.x client probes server/discover at 2026-07-28 first; aigw answers it (issue
    #5), so the client speaks 2026-07-28 without a handshake."""
    async with connect_plain(gateway.url) as client:
        assert client.protocol_version == "2026-07-28"
        assert text_of(await client.call_tool("py__echo", {"text": "auto"})) == "auto"
