"""No stickiness, proved with a real load balancer (issue 15): HAProxy (the Debian package)
round-robin in front of three aigw processes sharing one session key, running the
shipped ``etc/haproxy/aigw.cfg`` with this test's ports substituted.

The official Python SDK client's consecutive requests land on different processes
(HAProxy's log names the server of each request; each aigw's access log shows it
served some), and initialize, lists, calls, the GET stream, sampling round trips and a
2026-07-28 ``subscriptions/listen`` keep working.  Then one process is killed
(SIGKILL) mid-session and the client carries on: HAProxy retries a refused
connection on another server (``retries`` + ``option redispatch``) until its health
check takes the dead one out of rotation.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp import types

from .aigw import INITIALIZE
from .balancer import Balanced, served, start_balanced
from .harness.authserver import AuthServer
from .harness.oauth_client import connect, connect_plain
from .harness.processes import until_async
from .harness.results import ResourceUpdates, text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def balanced(
    server_everything: Upstream, pyserver: Upstream, pyserver_modern: Upstream
) -> Iterator[Balanced]:
    backends = [
        ("everything", server_everything.url),
        ("py", pyserver.url),
        ("modern", pyserver_modern.url),
    ]
    with start_balanced(backends) as found:
        yield found


async def sample(context: Any, params: types.CreateMessageRequestParams) -> Any:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="four"), model="t"
    )


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_a_legacy_session_is_served_by_every_process(balanced: Balanced) -> None:
    """One initialize-era session through HAProxy: its requests spread over all three
    processes and every feature works, the GET stream included (its upstream feed is
    opened by whichever process holds it; the update is triggered through another)."""
    before = len(balanced.servers())
    updates = ResourceUpdates()

    async with connect_plain(
        balanced.url, mode="legacy", sampling_callback=sample, message_handler=updates
    ) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert "py__echo" in names
        assert "everything__echo" in names
        for number in range(6):
            echoed = await client.call_tool("py__echo", {"text": f"hi {number}"})
            assert text_of(echoed) == f"hi {number}"
        assert "hi" in text_of(await client.call_tool("everything__echo", {"message": "hi"}))
        # Sampling round trips: the backend's request is relayed on the call's response
        # stream with a sealed id, and answered by a POST that may land anywhere.
        assert "four" in text_of(await client.call_tool("py__ask-llm", {}))
        sampled = await client.call_tool(
            "everything__trigger-sampling-request", {"prompt": "What is 2+2?", "maxTokens": 10}
        )
        assert "four" in text_of(sampled), text_of(sampled)
        # The GET stream.
        resources = await client.list_resources()
        counter = next(
            r.uri for r in resources.resources if str(r.uri).endswith("py/test://counter")
        )
        await client.subscribe_resource(counter)
        for _ in range(20):
            await client.call_tool("py__bump", {})
            with anyio.move_on_after(0.5):
                await updates.arrived.wait()
                break
        assert updates.uris[:1] == [str(counter)]
        prompts = await client.list_prompts()
        assert "py__greet" in [p.name for p in prompts.prompts]
    posts = balanced.servers()[before:]
    assert all(status == "200" or status == "202" for _, status in posts), posts
    chosen = [server for server, _ in posts]
    assert set(chosen) == {"aigw1", "aigw2", "aigw3"}, chosen
    # Consecutive requests of the one session went to different processes.
    assert sum(a != b for a, b in itertools.pairwise(chosen)) >= len(chosen) // 2, chosen
    # And each process's own access log shows it answered tool calls.
    assert all(served(gateway, "tools/call") >= 1 for gateway in balanced.gateways)
    gets = balanced.servers("GET")
    assert gets, "the SDK opened no GET stream"


async def test_a_2026_07_28_listen_sees_updates_triggered_through_other_processes(
    balanced: Balanced,
) -> None:
    """A 2026-07-28 client: each process keeps its own per-user upstream session; the
    listen's process subscribes upstream, and a bump through any process notifies it."""
    async with connect_plain(balanced.url, mode="2026-07-28") as client:
        assert text_of(await client.call_tool("py__echo", {"text": "modern"})) == "modern"
        uri = "aigw:py/test://counter"
        async with client.listen(resource_subscriptions=[uri]) as sub:
            assert list(sub.honored.resource_subscriptions or []) == [uri]
            event = None
            for _ in range(20):
                await client.call_tool("py__bump", {})
                with anyio.move_on_after(0.5):
                    event = await aiter(sub).__anext__()
                    break
            assert event is not None, "no notifications/resources/updated arrived"
            assert str(event.uri) == uri
        assert text_of(await client.call_tool("py__echo", {"text": "after"})) == "after"


def forwarded(balanced: Balanced) -> int:
    """How many requests the processes' logs show forwarded to another process (a retry
    or an answer belonging to a call that waits there: web/mcp/hop.py)."""
    return sum(
        gateway.process.log().count("forwarded to the aigw process at")
        for gateway in balanced.gateways
    )


async def test_a_2026_client_resumes_a_call_parked_in_another_process(
    balanced: Balanced,
) -> None:
    """A 2026-07-28 client over a session server that asks mid-call: the call is parked
    in the process that got it; HAProxy sends the retry to the next process, which
    forwards it to the one holding the parked call (sessions.peer_url)."""
    before = forwarded(balanced)
    answered: list[str] = []

    async def elicit(context: Any, params: Any) -> types.ElicitResult:
        answered.append("elicitation")
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async with connect_plain(
        balanced.url, mode="2026-07-28", sampling_callback=sample, elicitation_callback=elicit
    ) as client:
        with anyio.fail_after(60):
            for _ in range(3):
                assert "hello Ada" in text_of(await client.call_tool("py__resolve-user", {}))
                assert "four" in text_of(await client.call_tool("py__ask-llm", {}))
    assert answered == ["elicitation"] * 3
    # Round robin over three processes: every retry landed on another process than its call.
    moved = await until_async(lambda: forwarded(balanced) - before >= 6)
    assert moved, forwarded(balanced) - before


async def test_a_session_clients_answer_reaches_the_process_that_asked(
    balanced: Balanced,
) -> None:
    """A session client over a 2026-07-28 server's input_required: the process serving the
    call asks the client on the call's stream; the client's answer, a new POST that HAProxy
    sends to another process, is forwarded to the one waiting for it."""
    before = forwarded(balanced)
    async with connect_plain(balanced.url, mode="legacy", sampling_callback=sample) as client:
        with anyio.fail_after(60):
            for _ in range(3):
                said = await client.call_tool("modern__resolve-llm", {})
                assert "llm said: four" in text_of(said), said
    assert await until_async(lambda: forwarded(balanced) > before), forwarded(balanced) - before


async def test_an_oauth_session_through_the_balancer(
    auth_server: AuthServer, pyserver: Upstream
) -> None:
    """With OAuth (the real test authorization server): discovery, registration, login
    and every request go through HAProxy, and the token, verified by whichever process
    gets the request, names the balancer's URL as its audience (public_url)."""
    with start_balanced([("py", pyserver.url)], issuer=auth_server.issuer) as balanced:
        async with connect(balanced.url, "alice", mode="legacy") as client:
            assert "py__echo" in [t.name for t in (await client.list_tools()).tools]
            for number in range(6):
                echoed = await client.call_tool("py__echo", {"text": f"oauth {number}"})
                assert text_of(echoed) == f"oauth {number}"
        posts = [server for server, status in balanced.servers() if status in ("200", "202")]
        assert set(posts) == {"aigw1", "aigw2", "aigw3"}, balanced.servers()
        # Each process answered calls for the same authenticated user.
        subjects = [
            set(re.findall(r"\] tools/call ok in .* sub=(\S+)", gateway.process.log()))
            for gateway in balanced.gateways
        ]
        assert all(len(found) == 1 for found in subjects), subjects
        assert subjects[0] == subjects[1] == subjects[2], subjects


def post(url: str, body: Any, session: str | None = None, method: str = "POST") -> Any:
    """One request straight to a process (not through HAProxy): (status, headers, JSON)."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    if session is not None:
        headers["Mcp-Session-Id"] = session
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, found, raw = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        status, found, raw = error.code, error.headers, error.read()
    return status, found, json.loads(raw) if raw.strip() else None


def test_an_ended_session_id_is_refused_only_where_it_ended(balanced: Balanced) -> None:
    """Without ``sessions.redis_url`` (as here), ended ids are remembered in the process
    that ended them (docs/scale-out.md): there a replay is 404; another process accepts
    the id until its ttl, and a call through it still works (the backends forgot their
    upstream sessions; aigw re-opens them).  With it: ``test_ended_sessions.py``."""
    first, second = balanced.gateways[0], balanced.gateways[2]
    status, found, body = post(first.url, INITIALIZE)
    assert status == 200, body
    session = found["Mcp-Session-Id"]
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert post(second.url, ping, session)[0] == 200
    assert post(first.url, None, session, method="DELETE")[0] in (200, 204)
    assert post(first.url, ping, session)[0] == 404
    status, _, body = post(second.url, ping, session)
    assert status == 200, body
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "py__echo", "arguments": {"text": "replayed"}},
    }
    status, _, body = post(second.url, call, session)
    assert status == 200, body
    assert body["result"]["content"][0]["text"] == "replayed", body


async def test_a_process_killed_mid_session_leaves_the_client_working(balanced: Balanced) -> None:
    """SIGKILL the process holding the session's GET stream: the next requests succeed
    at once (a refused connection is retried on another server: nothing was sent yet),
    the SDK reopens its GET stream on another process, and once the health check marks
    the process down no request goes to it."""
    start = len(balanced.logged())
    async with connect_plain(balanced.url, mode="legacy", sampling_callback=sample) as client:
        for number in range(3):
            assert text_of(await client.call_tool("py__echo", {"text": str(number)})) == str(number)
        gets = await until_async(
            lambda: [r for r in balanced.logged()[start:] if r.method == "GET"]
        )
        assert gets, "the SDK opened no GET stream"
        name = gets[0].server
        victim = balanced.gateways[int(name[-1]) - 1]
        os.kill(victim.process.pid, signal.SIGKILL)
        assert await until_async(lambda: not victim.process.alive())
        killed_at = len(balanced.logged())
        for number in range(9):
            echoed = await client.call_tool("py__echo", {"text": f"after {number}"})
            assert text_of(echoed) == f"after {number}"
        assert "four" in text_of(await client.call_tool("py__ask-llm", {}))
        assert len((await client.list_tools()).tools) > 2
        # Health checks (inter 1s, fall 2): the dead server is out of rotation soon.
        down = f"{name} is DOWN"
        noticed = await until_async(lambda: down in balanced.haproxy.log())
        assert noticed, balanced.haproxy.log_tail()
        settled = len(balanced.logged())
        for _ in range(4):
            assert text_of(await client.call_tool("py__echo", {"text": "x"})) == "x"
        # The SDK reopens its GET stream ``sessions.stream_retry`` (2 s) after the loss.
        reopened = await until_async(
            lambda: [r for r in balanced.logged()[killed_at:] if r.method == "GET"], 30
        )
        assert reopened, "the SDK did not reopen its GET stream"
    after = balanced.logged()[killed_at:]
    assert all(r.status in ("200", "202", "204") for r in after), after
    # Before the health check noticed, requests round-robin'd to the dead process were
    # redispatched ("+1"): its connection was refused, so nothing had been sent.
    assert any(r.retries.startswith("+") for r in after), after
    # The SDK reopened its GET stream, which was on the killed process, elsewhere.
    assert any(r.method == "GET" and r.server != name for r in after), after
    later = [r.server for r in balanced.logged()[settled:]]
    assert name not in later, later
    assert len(set(later)) == 2, later
