"""MCP 2026-07-28 (stateless) clients through aigw over every upstream generation.

Clients: the official Python SDK pinned to 2026-07-28 (``mode="2026-07-28"``:
no handshake, every request carries the ``_meta`` envelope and routing
headers), in its default ``mode="auto"`` (``server/discover`` first: aigw
answers it, so the client stays on 2026-07-28), and in ``mode="legacy"`` as
the reference; and the TypeScript SDK 1.x (``e2e/ts-client.mjs``, OAuth login,
one scripted run per cell).  Upstreams: server-everything (2025-11-25, sessions)
and the ``mcp`` SDK pyserver, stateful, stateless and 2026-07-28 only.  aigw keeps
a per-user upstream session for the session-based ones.  Each cell is recorded in
the matrix the run prints at the end: ``ok``, or ``refused`` where the revision
(or session-less mode) of the client or upstream cannot carry the feature and the
test asserted the precise error saying so (see ``matrix.LEGEND``).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from .aigw import Gateway, start_gateway
from .harness.oauth_client import TsClientRun, connect_plain, run_ts_client, ts_client_argv
from .harness.results import text_of
from .harness.upstreams import (
    Upstream,
    aborted_requests,
    start_pyserver,
    start_server_everything,
)
from .matrix import REFUSED, TS_CLIENT, UPSTREAM_LABELS, record

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

CLIENTS = {"py-sdk 2026-07-28": "2026-07-28", "py-sdk auto": "auto", "py-sdk legacy": "legacy"}
UPSTREAMS = UPSTREAM_LABELS
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
def gateway(eras_gateway: Gateway) -> Gateway:
    """aigw in front of one upstream of each generation (conftest ``eras_gateway``)."""
    return eras_gateway


async def check(client_name: str, backend: str, feature: str, work: Any) -> None:
    """Run one feature check and record it in the matrix (re-raising failures).

    ``work`` returns None (``ok``) or ``REFUSED`` once it asserted aigw's refusal."""
    try:
        outcome = await work
    except BaseException:
        record(client_name, UPSTREAMS[backend], feature, False)
        raise
    record(client_name, UPSTREAMS[backend], feature, REFUSED if outcome == REFUSED else True)


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


MODES = ["2026-07-28", "auto", "legacy"]
#: A call long enough to be cancelled, and how the backend counts cancellations.
LONG_CALL = {
    "everything": ("trigger-long-running-operation", {"duration": 5, "steps": 5}),
    "py": ("slow", {"seconds": 5, "steps": 5}),
    "stateless": ("slow", {"seconds": 5, "steps": 5}),
    "modern": ("slow", {"seconds": 5, "steps": 5}),
}
#: The tool whose call makes the backend send the notification, and which one.
NOTIFY = {
    "everything": ("toggle-subscriber-updates", "notifications/resources/updated"),
    "py": ("bump", "notifications/resources/updated"),
    "modern": ("relist", "notifications/tools/list_changed"),
}
#: The resource subscribed to (server-everything: the first one it lists).
SUBSCRIBED = {"py": "aigw:py/test://counter", "stateless": "aigw:stateless/test://counter"}
#: The tool that makes the backend ask the client for sampling/createMessage.
SAMPLING = {
    "everything": ("trigger-sampling-request", {"prompt": "What is 2+2?", "maxTokens": 10}),
    "py": ("ask-llm", {}),
    "stateless": ("ask-llm", {}),
    "modern": ("resolve-llm", {}),
}


def start_upstream(kind: str, port: int | None = None) -> Upstream:
    if kind == "everything":
        return start_server_everything(port=port)
    return start_pyserver(port=port, stateless=kind != "py", modern_only=kind == "modern")


def echo_args(kind: str, text: str) -> dict[str, str]:
    return {("message" if kind == "everything" else "text"): text}


@pytest.mark.parametrize("kind", list(UPSTREAMS))
@pytest.mark.parametrize("mode", MODES)
async def test_upstream_restarted_mid_test(mode: str, kind: str) -> None:
    """The upstream dies and comes back on the same port.  A session-based one forgot
    aigw's session: aigw opens a new one; a session-less or 2026-07-28 one needs nothing.
    Only the calls made while it was down fail, with an error naming it."""
    upstream = start_upstream(kind)
    gateway = start_gateway([(kind, upstream.url)])
    client_name = f"py-sdk {mode}"
    ok = False
    try:
        async with connect_plain(gateway.url, mode=mode) as client:
            echo = f"{kind}__echo"
            assert "alpha" in text_of(await client.call_tool(echo, echo_args(kind, "alpha")))
            upstream.stop()
            with pytest.raises(MCPError) as caught:
                await client.call_tool(echo, echo_args(kind, "beta"))
            assert kind in caught.value.error.message
            upstream = start_upstream(kind, port=upstream.port)
            assert "gamma" in text_of(await client.call_tool(echo, echo_args(kind, "gamma")))
            names = [t.name for t in (await client.list_tools()).tools]
            assert echo in names
        assert gateway.process.alive
        ok = True
    finally:
        record(client_name, UPSTREAMS[kind], "upstream restart", ok)
        gateway.stop()
        upstream.stop()


async def _cancelled(client: Any, backend: str, everything: Upstream) -> int:
    """How many calls the backend saw cancelled: the pyservers count them (slow-stats);
    server-everything's aborts are logged by the e2e/abort-probe.cjs preload."""
    if backend == "everything":
        return aborted_requests(everything)
    stats = await client.call_tool(f"{backend}__slow-stats", {})
    return int(json.loads(text_of(stats))["cancelled"])


@pytest.mark.parametrize("backend", list(UPSTREAMS))
@pytest.mark.parametrize("mode", MODES)
async def test_cancellation_reaches_the_backend(
    gateway: Gateway, server_everything: Upstream, mode: str, backend: str
) -> None:
    """A 2026-07-28 client cancels by closing its request's stream (streamable-http
    "Cancellation"); aigw passes it on as notifications/cancelled to a session-based
    backend and by closing its own stream to a session-less or 2026-07-28 one."""
    client_name = f"py-sdk {mode}"
    ok = False
    try:
        async with connect_plain(gateway.url, mode=mode) as client:
            await client.list_tools()  # the upstream sessions are open: only the call is timed
            before = await _cancelled(client, backend, server_everything)
            tool, args = LONG_CALL[backend]
            with anyio.move_on_after(0.7):
                await client.call_tool(f"{backend}__{tool}", args)
                raise AssertionError("the call ended before it was cancelled")
            for _ in range(100):
                if await _cancelled(client, backend, server_everything) > before:
                    break
                await anyio.sleep(0.1)
            else:
                raise AssertionError(f"{backend} saw no cancellation")
        ok = True
    finally:
        record(client_name, UPSTREAMS[backend], "cancellation", ok)


async def _until(trigger: Any, arrived: Any, what: str) -> Any:
    """Call ``trigger`` until ``arrived`` returns within 0.5 s (the upstream stream opens
    asynchronously, so the first trigger may precede it)."""
    for _ in range(20):
        await trigger()
        with anyio.move_on_after(0.5):
            return await arrived()
    raise AssertionError(f"no {what} arrived")


async def _first_resource(client: Any, backend: str) -> str:
    if backend in SUBSCRIBED:
        return SUBSCRIBED[backend]
    listed = (await client.list_resources()).resources
    return next(str(r.uri) for r in listed if str(r.uri).startswith(f"aigw:{backend}/"))


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
@pytest.mark.parametrize("backend", list(UPSTREAMS))
@pytest.mark.parametrize("mode", MODES)
async def test_notifications(gateway: Gateway, mode: str, backend: str) -> None:
    """Resource updates from a session-based upstream: 2026-07-28 clients get them on
    subscriptions/listen (basic/patterns/subscriptions), older ones on the GET stream
    after resources/subscribe (2025-11-25 basic/transports).  List changes of a 2026-07-28
    upstream, which aigw listens for.  A session-less 2025-11-25 upstream has no stream
    to send updates on: aigw refuses the subscription instead of accepting it silently."""
    client_name = f"py-sdk {mode}"
    outcome: bool | str = False
    received: list[Any] = []
    arrived = anyio.Event()

    async def on_message(message: Any) -> None:
        if str(getattr(message, "method", "")).startswith("notifications/"):
            received.append(message)
            arrived.set()

    async def seen(method: str) -> Any:
        while True:
            found = [m for m in received if m.method == method]
            if found:
                return found[0]
            await arrived.wait()
            arrived_reset()

    def arrived_reset() -> None:
        nonlocal arrived
        arrived = anyio.Event()

    try:
        async with connect_plain(gateway.url, mode=mode, message_handler=on_message) as client:
            if backend == "stateless":
                outcome = await _refused_subscription(client, mode)
                return
            tool, method = NOTIFY[backend]
            uri = await _first_resource(client, backend) if "resources" in method else None

            async def trigger() -> None:
                await client.call_tool(f"{backend}__{tool}", {})

            if mode == "legacy":
                if uri is not None:
                    await client.subscribe_resource(uri)
                got = await _until(trigger, lambda: seen(method), method)
                if uri is not None:
                    assert str(got.params.uri) == uri
            elif uri is not None:
                async with client.listen(resource_subscriptions=[uri]) as sub:
                    assert list(sub.honored.resource_subscriptions or []) == [uri]
                    event = await _until(trigger, aiter(sub).__anext__, method)
                assert str(event.uri) == uri
            else:
                async with client.listen(tools_list_changed=True) as sub:
                    assert sub.honored.tools_list_changed
                    await _until(trigger, aiter(sub).__anext__, method)
        outcome = True
    finally:
        record(client_name, UPSTREAMS[backend], "notifications", outcome)


async def _refused_subscription(client: Any, mode: str) -> str:
    """aigw's answer to a subscription on the session-less upstream: resources/subscribe
    fails with -32600 naming the backend and the reason; subscriptions/listen leaves the
    URI out of its acknowledgment (basic/patterns/subscriptions "Acknowledgment")."""
    uri = SUBSCRIBED["stateless"]
    if mode == "legacy":
        with anyio.fail_after(10), pytest.raises(MCPError) as caught:
            await client.subscribe_resource(uri)
        assert caught.value.error.code == -32600, caught.value.error
        assert "'stateless'" in caught.value.error.message
        assert "no session" in caught.value.error.message
        assert (caught.value.error.data or {}).get("reason") == "no_session_stream"
    else:
        with anyio.fail_after(10):
            async with client.listen(resource_subscriptions=[uri]) as sub:
                assert list(sub.honored.resource_subscriptions or []) == []
    return REFUSED


@pytest.mark.parametrize("backend", list(UPSTREAMS))
@pytest.mark.parametrize("mode", MODES)
async def test_sampling(gateway: Gateway, mode: str, backend: str) -> None:
    """Sampling (deprecated by 2026-07-28, SEP-2577) across the eras: a session client is
    relayed a session server's request and asked a 2026-07-28 server's input_required by
    aigw; a 2026-07-28 client gets input_required for both.  See SAMPLING_REFUSALS for
    what the upstream's revision cannot carry."""
    client_name = f"py-sdk {mode}"
    outcome: bool | str = False
    asked: list[str] = []

    async def sampling(context: Any, params: Any) -> types.CreateMessageResult:
        asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="four"), model="t"
        )

    try:
        async with connect_plain(gateway.url, mode=mode, sampling_callback=sampling) as client:
            tool, args = SAMPLING[backend]
            assert f"{backend}__{tool}" in [t.name for t in (await client.list_tools()).tools]
            code: int | None = None
            with anyio.fail_after(20):
                try:
                    result = await client.call_tool(f"{backend}__{tool}", args)
                    answered, text = not result.is_error, text_of(result)
                except MCPError as error:
                    answered, text, code = False, error.error.message, error.error.code
        refusal = sampling_refusal("legacy" if mode == "legacy" else "2026-07-28", backend)
        if refusal is None:
            assert answered, text
            assert "four" in text
            assert asked == ["sampling"]
            outcome = True
        else:
            expected_code, reason = refusal
            assert not answered, text
            assert code == expected_code, (code, text)
            assert reason in text, text
            assert asked == []
            outcome = REFUSED
    finally:
        record(client_name, UPSTREAMS[backend], "sampling", outcome)


@pytest.mark.parametrize("mode", MODES)
async def test_a_backends_ping_mid_call_is_answered(gateway: Gateway, mode: str) -> None:
    """basic/utilities/ping: the receiver MUST answer promptly with an empty result.  The
    backend's peer is aigw, which answers itself (``protocol/ping.py``): a 2026-07-28
    client, which takes no server-to-client requests, is never asked."""
    async with connect_plain(gateway.url, mode=mode) as client:
        with anyio.fail_after(20):
            assert text_of(await client.call_tool("py__ping-client", {})) == "pong {}"


def sampling_refusal(client: str, backend: str) -> tuple[int | None, str] | None:
    """How the call fails when sampling cannot work for this client and upstream: the
    JSON-RPC error code (None: a tool result with isError) and what the message says;
    None when sampling works."""
    # A 2026-07-28 client: a 2026-07-28 server's input_required is relayed as it is; a
    # session server's request mid-call becomes aigw's own input_required, the upstream
    # call parked until the client retries with its answer (gateway/parking.py).
    return SAMPLING_REFUSALS.get(backend)


#: A session-less 2025-11-25 server has no back-channel for its own requests (its reply to
#: the client could not land): the SDK refuses with -32600 naming the reason, and aigw
#: relays that answer.  (A 2026-07-28 server's input_required is asked of a session client
#: by aigw itself: gateway/asking.py.)
SAMPLING_REFUSALS: dict[str, tuple[int | None, str]] = {
    "stateless": (-32600, "no back-channel for server-initiated requests"),
}


#: What the TypeScript client subscribes to (server-everything accepts any URI).
TS_SUBSCRIBED = {**SUBSCRIBED, "everything": "aigw:everything/demo://resource/dynamic/text/1"}


def ts_script(backend: str) -> list[dict[str, Any]]:
    """One ts-client run checks every feature of its cell (one OAuth login)."""
    tool, args = PROGRESS[backend]
    long_tool, long_args = LONG_CALL[backend]
    cancel: dict[str, Any] = {
        "op": "cancel",
        "name": f"{backend}__{long_tool}",
        "args": long_args,
        "afterMs": 700,
    }
    if backend != "everything":
        cancel["stats"] = f"{backend}__slow-stats"
    if backend == "stateless":
        notify: list[dict[str, Any]] = [{"op": "subscribe", "uri": TS_SUBSCRIBED[backend]}]
    else:
        trigger, method = NOTIFY[backend]
        notify = [
            {
                "op": "notify",
                "method": method,
                "trigger": {"name": f"{backend}__{trigger}", "args": {}},
            }
        ]
        if "resources" in method:
            notify.insert(0, {"op": "subscribe", "uri": TS_SUBSCRIBED[backend]})
    sampling_tool, sampling_args = SAMPLING[backend]
    return [
        {"op": "tools"},
        {"op": "call", "name": f"{backend}__echo", "args": ECHO_ARGS[backend]},
        {"op": "call", "name": f"{backend}__{tool}", "args": args, "progress": True},
        {"op": "prompts", "prefix": f"{backend}__"},
        {"op": "resources", "prefix": f"aigw:{backend}/"},
        cancel,
        *notify,
        {"op": "call", "name": f"{backend}__{sampling_tool}", "args": sampling_args},
    ]


def _ts_tools(events: list[dict[str, Any]], backend: str) -> None:
    names = [t["name"] for t in _one(events, "tools")["tools"]]
    assert f"{backend}__echo" in names
    echoed = _one(events, "call", name=f"{backend}__echo")
    assert "hi" in json.dumps(echoed["result"])


def _ts_progress(events: list[dict[str, Any]], backend: str) -> None:
    tool, _ = PROGRESS[backend]
    called = _one(events, "call", name=f"{backend}__{tool}")
    assert not called["result"].get("isError"), called
    progress = [i for i, e in enumerate(events) if e["event"] == "progress"]
    assert progress, "no progress notification arrived"
    assert progress[0] < events.index(called)


def _ts_prompts(events: list[dict[str, Any]], backend: str) -> None:
    got = _one(events, "prompt")
    assert got["name"].startswith(f"{backend}__")
    assert got["result"]["messages"]


def _ts_resources(events: list[dict[str, Any]], backend: str) -> None:
    read = _one(events, "read")
    assert read["uri"].startswith(f"aigw:{backend}/")
    assert read["result"]["contents"][0]["uri"] == read["uri"]


def _one(events: list[dict[str, Any]], event: str, **match: Any) -> dict[str, Any]:
    found = [
        e for e in events if e["event"] == event and all(e.get(k) == v for k, v in match.items())
    ]
    assert found, f"no {event} {match or ''} event in {[e['event'] for e in events]}"
    return found[0]


@pytest.mark.parametrize("backend", list(UPSTREAMS))
def test_typescript_sdk_client_over_upstream_generation(
    gateway: Gateway, server_everything: Upstream, backend: str
) -> None:
    """The TypeScript SDK 1.x (initialize handshake only): tools, progress, prompts,
    resources, cancellation (AbortSignal: the SDK sends notifications/cancelled),
    notifications on the GET stream and sampling, in one run per upstream."""
    before = aborted_requests(server_everything)
    events: list[dict[str, Any]] = []
    try:
        events = run_ts_client(gateway.url, "alice", script=ts_script(backend), sampling=True)
    except subprocess.CalledProcessError as failed:
        events = [json.loads(line) for line in failed.stdout.splitlines() if line.startswith("{")]
    checks = {
        "tools": _ts_tools,
        "progress": _ts_progress,
        "prompts": _ts_prompts,
        "resources": _ts_resources,
        "cancellation": lambda e, b: _ts_cancellation(e, b, server_everything, before),
        "notifications": _ts_notifications,
        "sampling": _ts_sampling,
    }
    failures = []
    for feature, verify in checks.items():
        outcome: bool | str = False
        try:
            outcome = verify(events, backend) or True
        except AssertionError as error:
            failures.append(f"{feature}: {error}")
        finally:
            record(TS_CLIENT, UPSTREAMS[backend], feature, outcome)
    assert not failures, (failures, events[-3:])


def _ts_cancellation(
    events: list[dict[str, Any]], backend: str, everything: Upstream, before: int
) -> None:
    aborted = _one(events, "aborted")
    assert "abort" in aborted["message"].lower(), aborted
    if backend != "everything":
        cancelled = _one(events, "cancelled")
        assert cancelled["after"] > cancelled["before"]
        return
    for _ in range(100):
        if aborted_requests(everything) > before:
            return
        time.sleep(0.1)
    raise AssertionError("server-everything saw no notifications/cancelled")


def _ts_notifications(events: list[dict[str, Any]], backend: str) -> str | None:
    if backend == "stateless":
        refused = _one(events, "subscribe-error")
        assert refused["code"] == -32600, refused
        assert "'stateless' keeps no session" in refused["message"], refused
        assert (refused["data"] or {}).get("reason") == "no_session_stream"
        return REFUSED
    _, method = NOTIFY[backend]
    notified = _one(events, "notified", method=method)
    if "resources" in method:
        assert _one(events, "subscribed")
        assert notified["params"]["uri"] == TS_SUBSCRIBED[backend]
    return None


def _ts_sampling(events: list[dict[str, Any]], backend: str) -> str | None:
    tool, _ = SAMPLING[backend]
    name = f"{backend}__{tool}"
    refusal = sampling_refusal("legacy", backend)
    if refusal is None:
        called = _one(events, "call", name=name)
        assert not called["result"].get("isError"), called
        assert "four" in json.dumps(called["result"])
        assert _one(events, "sampling")
        return None
    expected_code, reason = refusal
    assert not [e for e in events if e["event"] == "sampling"]
    failed = _one(events, "call-error", name=name)
    assert failed["code"] == expected_code, failed
    assert reason in failed["message"], failed
    return REFUSED


@pytest.mark.parametrize("kind", list(UPSTREAMS))
def test_typescript_sdk_client_over_a_restarted_upstream(kind: str) -> None:
    """The TypeScript client keeps its aigw session while the upstream dies and comes
    back on the same port; only the call made while it was down fails, naming it."""
    upstream = start_upstream(kind)
    gateway = start_gateway([(kind, upstream.url)])
    echo = f"{kind}__echo"
    script = [
        {"op": "call", "name": echo, "args": echo_args(kind, "alpha")},
        {"op": "pause"},
        {"op": "call", "name": echo, "args": echo_args(kind, "beta")},
        {"op": "pause"},
        {"op": "call", "name": echo, "args": echo_args(kind, "gamma")},
        {"op": "tools"},
    ]
    run = TsClientRun(ts_client_argv(gateway.url, "alice", script=script))
    ok = False
    try:
        run.until("paused")
        upstream.stop()
        run.resume()
        events = run.until("paused")
        down = _one(events, "call-error", name=echo)
        assert kind in down["message"], down
        upstream = start_upstream(kind, port=upstream.port)
        run.resume()
        events = run.finish()
        calls = [e for e in events if e["event"] == "call"]
        assert [("alpha" in json.dumps(c), "gamma" in json.dumps(c)) for c in calls] == [
            (True, False),
            (False, True),
        ], calls
        assert echo in [t["name"] for t in _one(events, "tools")["tools"]]
        assert gateway.process.alive
        ok = True
    finally:
        record(TS_CLIENT, UPSTREAMS[kind], "upstream restart", ok)
        run.stop()
        gateway.stop()
        upstream.stop()
