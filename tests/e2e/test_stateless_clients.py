"""MCP 2026-07-28 (stateless) clients through aigw over every upstream generation.

Clients: the official Python SDK pinned to 2026-07-28 (``mode="2026-07-28"``:
no handshake, every request carries the ``_meta`` envelope and routing
headers), in its default ``mode="auto"`` (``server/discover`` first: aigw
answers it, so the client stays on 2026-07-28), and in ``mode="legacy"`` as
the reference.  Upstreams: server-everything (2025-11-25, sessions) and the
``mcp`` SDK pyserver, stateful and stateless.  aigw keeps a per-user upstream
session for the session-based ones.  Each cell is recorded in the matrix the
run prints at the end.
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
from .harness.oauth_client import connect_plain, run_ts_client
from .harness.results import text_of
from .harness.upstreams import Upstream, start_pyserver
from .matrix import record

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

CLIENTS = {"py-sdk 2026-07-28": "2026-07-28", "py-sdk auto": "auto", "py-sdk legacy": "legacy"}
UPSTREAMS = {
    "everything": "server-everything 2025-11-25",
    "py": "mcp SDK stateful",
    "stateless": "mcp SDK stateless",
    "modern": "mcp SDK 2026-07-28 only",
}
ECHO_ARGS = {
    "everything": {"message": "hi"},
    "py": {"text": "hi"},
    "stateless": {"text": "hi"},
    "modern": {"text": "hi"},
}
PROGRESS = {
    "everything": ("trigger-long-running-operation", {"duration": 1, "steps": 2}),
    "py": ("slow", {"seconds": 1, "steps": 2}),
    "stateless": ("slow", {"seconds": 1, "steps": 2}),
    "modern": ("slow", {"seconds": 1, "steps": 2}),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def gateway(
    server_everything: Upstream,
    pyserver: Upstream,
    pyserver_stateless: Upstream,
    pyserver_modern: Upstream,
) -> Iterator[Gateway]:
    started = start_gateway(
        [
            ("everything", server_everything.url),
            ("py", pyserver.url),
            ("stateless", pyserver_stateless.url),
            ("modern", pyserver_modern.url),
        ]
    )
    try:
        yield started
    finally:
        started.stop()


async def check(client_name: str, backend: str, feature: str, work: Any) -> None:
    """Run one feature check and record it in the matrix (re-raising failures)."""
    try:
        await work
    except BaseException:
        record(client_name, UPSTREAMS[backend], feature, False)
        raise
    record(client_name, UPSTREAMS[backend], feature, True)


async def tools(client: Any, backend: str) -> None:
    names = [t.name for t in (await client.list_tools()).tools]
    assert f"{backend}__echo" in names, names
    assert all("__" in name for name in names)
    result = await client.call_tool(f"{backend}__echo", ECHO_ARGS[backend])
    assert "hi" in text_of(result)


async def progress(client: Any, backend: str) -> None:
    seen: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(anyio.current_time())

    tool, args = PROGRESS[backend]
    result = await client.call_tool(f"{backend}__{tool}", args, progress_callback=on_progress)
    done = anyio.current_time()
    assert not result.is_error, result
    assert seen, "no progress notification arrived"
    assert seen[0] < done - 0.2, "progress arrived only with the result"


async def prompts(client: Any, backend: str) -> None:
    listed = (await client.list_prompts()).prompts
    mine = [p for p in listed if p.name.startswith(f"{backend}__")]
    assert mine, [p.name for p in listed]
    arguments = {a.name: "Ada" for a in mine[0].arguments or [] if a.required}
    got = await client.get_prompt(mine[0].name, arguments)
    assert got.messages


async def resources(client: Any, backend: str) -> None:
    listed = (await client.list_resources()).resources
    mine = [r for r in listed if str(r.uri).startswith(f"aigw:{backend}/")]
    assert mine, [str(r.uri) for r in listed][:5]
    read = await client.read_resource(mine[0].uri)
    assert read.contents
    assert str(read.contents[0].uri) == str(mine[0].uri)


FEATURES = {"tools": tools, "progress": progress, "prompts": prompts, "resources": resources}


@pytest.mark.parametrize("backend", list(UPSTREAMS))
@pytest.mark.parametrize("client_name", list(CLIENTS))
async def test_client_generation_over_upstream_generation(
    gateway: Gateway, client_name: str, backend: str
) -> None:
    """Lists, calls, progress, prompts and resources for one client x upstream cell."""
    async with connect_plain(gateway.url, mode=CLIENTS[client_name]) as client:
        expected = "2025-11-25" if CLIENTS[client_name] == "legacy" else "2026-07-28"
        assert client.protocol_version == expected
        for feature, run in FEATURES.items():
            await check(client_name, backend, feature, run(client, backend))


async def test_pinned_client_gets_caching_hints_and_private_scope(gateway: Gateway) -> None:
    """server/utilities/caching: aigw's lists are per user, so ``private``."""
    async with connect_plain(gateway.url, mode="2026-07-28") as client:
        listed = await client.list_tools()
    dumped = json.loads(listed.model_dump_json(by_alias=True))
    assert dumped["cacheScope"] == "private"
    assert dumped["ttlMs"] >= 0


@pytest.mark.parametrize("backend", list(UPSTREAMS))
def test_typescript_sdk_client_over_upstream_generation(gateway: Gateway, backend: str) -> None:
    """The TypeScript SDK 1.x (initialize handshake only): tools, calls and progress."""
    client_name = "ts-sdk 1.x (2025-11-25)"
    ok = False
    try:
        events = run_ts_client(
            gateway.url, "alice", call=f"{backend}__echo", args=ECHO_ARGS[backend]
        )
        listed = next(e for e in events if e["event"] == "tools")
        names = [t["name"] for t in listed["tools"]]
        assert f"{backend}__echo" in names
        called = next(e for e in events if e["event"] == "call")
        assert "hi" in json.dumps(called["result"])
        ok = True
    finally:
        record(client_name, UPSTREAMS[backend], "tools", ok)
    ok = False
    tool, args = PROGRESS[backend]
    try:
        events = run_ts_client(
            gateway.url, "alice", call=f"{backend}__{tool}", args=args, extra_argv=["--no-list"]
        )
        assert any(e["event"] == "progress" for e in events), events
        assert not next(e for e in events if e["event"] == "call")["result"].get("isError")
        ok = True
    finally:
        record(client_name, UPSTREAMS[backend], "progress", ok)


@pytest.mark.parametrize("kind", ["py", "modern"])
@pytest.mark.parametrize("mode", ["2026-07-28", "auto", "legacy"])
async def test_upstream_restarted_mid_test(mode: str, kind: str) -> None:
    """The upstream dies and comes back on the same port.  A session-based one forgot
    aigw's session: aigw re-initializes on the 404; a 2026-07-28 one needs nothing.
    Only the calls made while it was down fail, with an error naming it."""
    upstream = start_pyserver(stateless=kind == "modern", modern_only=kind == "modern")
    port = int(upstream.url.rsplit(":", 1)[1].split("/", 1)[0])
    gateway = start_gateway([(kind, upstream.url)])
    client_name = f"py-sdk {mode}"
    ok = False
    try:
        async with connect_plain(gateway.url, mode=mode) as client:
            assert text_of(await client.call_tool(f"{kind}__echo", {"text": "a"})) == "a"
            upstream.stop()
            with pytest.raises(MCPError) as caught:
                await client.call_tool(f"{kind}__echo", {"text": "b"})
            assert kind in caught.value.error.message
            upstream = start_pyserver(
                port=port, stateless=kind == "modern", modern_only=kind == "modern"
            )
            assert text_of(await client.call_tool(f"{kind}__echo", {"text": "c"})) == "c"
            names = [t.name for t in (await client.list_tools()).tools]
            assert f"{kind}__echo" in names
        assert gateway.process.alive
        ok = True
    finally:
        record(client_name, UPSTREAMS[kind], "upstream restart", ok)
        gateway.stop()
        upstream.stop()


@pytest.mark.parametrize("backend", ["py", "modern"])
@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_cancellation_reaches_the_backend(gateway: Gateway, mode: str, backend: str) -> None:
    """A 2026-07-28 client cancels by closing its request's stream (streamable-http
    "Cancellation"); aigw passes it on as notifications/cancelled to a session-based
    backend and by closing its own stream to a 2026-07-28 one."""
    client_name = f"py-sdk {mode}"
    ok = False
    try:
        async with connect_plain(gateway.url, mode=mode) as client:
            stats = await client.call_tool(f"{backend}__slow-stats", {})
            before = json.loads(text_of(stats))["cancelled"]
            with anyio.move_on_after(0.7):
                await client.call_tool(f"{backend}__slow", {"seconds": 5, "steps": 5})
            with anyio.fail_after(10):
                while True:
                    stats = await client.call_tool(f"{backend}__slow-stats", {})
                    if json.loads(text_of(stats))["cancelled"] > before:
                        break
                    await anyio.sleep(0.1)
        ok = True
    finally:
        record(client_name, UPSTREAMS[backend], "cancellation", ok)


async def _bump_until_event(client: Any, events: Any) -> Any:
    """Call py__bump until an update arrives (the upstream GET stream opens
    asynchronously after the acknowledgment, so the first bump may precede it)."""
    for _ in range(20):
        await client.call_tool("py__bump", {})
        with anyio.move_on_after(0.5):
            return await events.__anext__()
    raise AssertionError("no notifications/resources/updated arrived")


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
@pytest.mark.parametrize("mode", ["2026-07-28", "auto", "legacy"])
async def test_resource_updates_from_a_session_based_upstream(gateway: Gateway, mode: str) -> None:
    """2026-07-28 clients get them on subscriptions/listen (basic/patterns/subscriptions);
    older ones on the GET stream after resources/subscribe (2025-11-25 basic/transports)."""
    client_name = f"py-sdk {mode}"
    ok = False
    updates: list[str] = []
    updated = anyio.Event()

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == "notifications/resources/updated":
            updates.append(str(message.params.uri))
            updated.set()

    try:
        async with connect_plain(gateway.url, mode=mode, message_handler=on_message) as client:
            resources = (await client.list_resources()).resources
            counter = next(str(r.uri) for r in resources if str(r.uri) == "aigw:py/test://counter")
            if mode == "legacy":
                await client.subscribe_resource(counter)
                for _ in range(20):
                    await client.call_tool("py__bump", {})
                    with anyio.move_on_after(0.5):
                        await updated.wait()
                    if updates:
                        break
                assert updates
                assert updates[0] == counter
            else:
                async with client.listen(resource_subscriptions=[counter]) as sub:
                    assert list(sub.honored.resource_subscriptions or []) == [counter]
                    event = await _bump_until_event(client, aiter(sub))
                assert str(event.uri) == counter
        ok = True
    finally:
        record(client_name, UPSTREAMS["py"], "notifications", ok)


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_sampling_from_a_session_based_upstream(gateway: Gateway, mode: str) -> None:
    """Sampling (deprecated by 2026-07-28, SEP-2577) keeps working for session-based clients;
    a 2026-07-28 client cannot receive the backend's request (streamable-http "Receiving
    Messages"), so aigw answers the backend with an error and the call ends, not hangs."""
    client_name = f"py-sdk {mode}"
    ok = False
    asked: list[str] = []

    async def sampling(context: Any, params: Any) -> types.CreateMessageResult:
        asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="four"), model="t"
        )

    try:
        async with connect_plain(gateway.url, mode=mode, sampling_callback=sampling) as client:
            with anyio.fail_after(20):
                try:
                    result = await client.call_tool("py__ask-llm", {})
                    answered, text = not result.is_error, text_of(result)
                except MCPError as error:
                    answered, text = False, error.error.message
        if mode == "legacy":
            assert answered, text
            assert "four" in text
            assert asked == ["sampling"]
        else:
            assert not answered, text
            assert "2026-07-28" in text, text
            assert asked == []
        ok = True
    finally:
        record(client_name, UPSTREAMS["py"], "sampling", ok)


@pytest.mark.parametrize("mode", ["2026-07-28", "auto", "legacy"])
async def test_list_changes_from_a_2026_07_28_upstream(gateway: Gateway, mode: str) -> None:
    """aigw listens (subscriptions/listen) on the 2026-07-28 backend and passes its list
    changes on: to 2026-07-28 clients on their listen stream, to older ones on the GET
    stream (2025-11-25 basic/transports "Listening for Messages from the Server")."""
    client_name = f"py-sdk {mode}"
    ok = False
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    async def relist_until(done: Any) -> None:
        for _ in range(20):
            await client.call_tool("modern__relist", {})
            with anyio.move_on_after(0.5):
                await done()
                return
        raise AssertionError("no notifications/tools/list_changed arrived")

    try:
        async with connect_plain(gateway.url, mode=mode, message_handler=on_message) as client:
            if mode == "legacy":
                await relist_until(changed.wait)
            else:
                async with client.listen(tools_list_changed=True) as sub:
                    assert sub.honored.tools_list_changed
                    events = aiter(sub)
                    await relist_until(events.__anext__)
        ok = True
    finally:
        record(client_name, UPSTREAMS["modern"], "notifications", ok)
