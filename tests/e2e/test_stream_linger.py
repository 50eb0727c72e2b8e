"""A 2026-07-28 client closing and reopening its ``subscriptions/listen`` at once, through
aigw, to server-everything (Streamable HTTP with sessions, the TypeScript SDK's one GET
stream per session: a second gets 409 "Only one SSE stream is allowed per session").

aigw listens for the client on the GET stream of the user's pooled upstream session
(2025-11-25 basic/transports "Listening for Messages from the Server"; 2026-07-28
basic/patterns/subscriptions).  When the client's listen closes, that upstream stream
lingers (``backends[].stream_linger``) for the next listen, so reopening meets no 409,
and a resource update the backend sends while no listen is open reaches the next one
(2026-07-28 listens cannot be resumed, and server-everything keeps no event store).

A GET stream resumed with a ``Last-Event-ID`` from before what the lingering stream holds
(the client lost what aigw last wrote it) is resumed by the backend (the TypeScript SDK
with an event store, ``e2e/resumable.mjs``) once aigw has closed the lingering stream, so
the backend's one-stream rule meets no second stream: no 409, and every message once, in
order (2025-11-25 basic/transports "Resumability and Redelivery").

A backend's request held that way (here the pyserver's ``roots/list`` on its
standalone stream, the MCP Python SDK) that no client stream takes before the linger
ends is answered by aigw with an error at once, not left to the backend's timeout.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from aigw.gateway.linger import RECENT

from .aigw import Gateway, start_gateway
from .harness.oauth_client import connect_plain
from .harness.upstreams import Upstream, start_resumable

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


@pytest.fixture(scope="module")
def py_gateway(pyserver: Upstream) -> Iterator[Gateway]:
    """The pyserver behind aigw, its stream lingering long enough for a tool call to
    land within the linger on a loaded machine."""
    started = start_gateway([("py", pyserver.url, "stream_linger: 10s")], metrics=True)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def resumable_gateway(node_modules: None) -> Iterator[tuple[Gateway, Upstream]]:
    """``e2e/resumable.mjs`` behind aigw, its stream lingering long enough for a tool
    call and a reconnection to land within the linger on a loaded machine."""
    upstream = start_resumable()
    try:
        started = start_gateway([("resumable", upstream.url, "stream_linger: 20s")], metrics=True)
        try:
            yield started, upstream
        finally:
            started.stop()
    finally:
        upstream.stop()


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


class RawSession:
    """A 2025-11-25 session through aigw over plain HTTP: its GET stream can be closed
    while the session lives on (an SDK client keeps its stream open)."""

    def __init__(self, http: httpx2.AsyncClient, gateway: Gateway) -> None:
        self.http = http
        self.url = gateway.url
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        self.ids = iter(range(1, 1_000_000))

    async def start(self) -> None:
        """Initialize, declaring roots: no capability check refuses the request."""
        params = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"roots": {}},
            "clientInfo": {"name": "linger", "version": "0"},
        }
        reply = await self.post(
            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        )
        assert reply.status_code == 200, reply.text
        self.headers["Mcp-Session-Id"] = reply.headers["mcp-session-id"]
        self.headers["MCP-Protocol-Version"] = "2025-11-25"
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def post(self, message: Any) -> httpx2.Response:
        return await self.http.post(self.url, json=message, headers=self.headers, timeout=30)

    async def call(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        """The text a tool answered."""
        params = {"name": tool, "arguments": arguments or {}}
        message = {"jsonrpc": "2.0", "id": next(self.ids), "method": "tools/call", "params": params}
        reply = await self.post(message)
        assert reply.status_code == 200, reply.text
        if reply.headers.get("content-type", "").startswith("text/event-stream"):
            data = [line[5:] for line in reply.text.splitlines() if line.startswith("data:")]
            answer = json.loads(data[-1])
        else:
            answer = reply.json()
        text: str = answer["result"]["content"][0]["text"]
        return text

    def stream(self, last_event_id: str | None = None) -> Any:
        """The session's GET stream (an async context manager), resumed from
        ``last_event_id`` when given."""
        headers = {**self.headers, "Accept": "text/event-stream"}
        del headers["Content-Type"]
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        return self.http.stream("GET", self.url, headers=headers, timeout=None)


@asynccontextmanager
async def sse_events(
    session: RawSession, last_event_id: str | None = None
) -> AsyncIterator[MemoryObjectReceiveStream[tuple[str | None, Any]]]:
    """The session's GET stream (resumed from ``last_event_id`` when given), its events
    with a message as (event id, message) on a channel: one waits for them with a timeout
    without cancelling the stream's reading.  SSE: an id lasts until the next one; an
    event with empty data (the priming one) carries no message."""
    send, receive = anyio.create_memory_object_stream[tuple[str | None, Any]](1000)

    async def read(lines: AsyncIterator[str]) -> None:
        event_id: str | None = None
        data: list[str] = []
        async for line in lines:
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                if any(data):
                    await send.send((event_id, json.loads("\n".join(data))))
                data = []

    async with session.stream(last_event_id) as stream, anyio.create_task_group() as tasks:
        assert stream.status_code == 200
        tasks.start_soon(read, stream.aiter_lines())
        yield receive
        tasks.cancel_scope.cancel()


async def _announced(session: RawSession, lines: AsyncIterator[str]) -> None:
    """``announce`` until its notification comes on the GET stream within 1 s: aigw's
    stream to the backend opens after the client's, so the first may precede it."""
    for _ in range(30):
        await session.call("py__announce")
        with anyio.move_on_after(1):
            async for line in lines:
                if "notifications/tools/list_changed" in line:
                    return
    raise AssertionError("the backend's stream never reached the client's GET stream")


#: How many times the GET stream is closed and resumed from before its last messages.
RESUMES = 4


async def _logged(events: MemoryObjectReceiveStream[tuple[str | None, Any]]) -> tuple[int, str]:
    """The next ``notify`` message on the stream: its number and its event id."""
    while True:
        event_id, message = await events.receive()
        if message.get("method") == "notifications/message":
            assert event_id is not None
            return int(message["params"]["data"]["n"]), event_id


@pytest.mark.parametrize(("lost", "asked"), [(2, False), (RECENT + 1, True)])
async def test_a_get_stream_resumed_from_before_its_last_messages_gets_each_once_no_409(
    resumable_gateway: tuple[Gateway, Upstream], lost: int, asked: bool
) -> None:
    """Each round: messages k+1..k+lost arrive but the client keeps the id of k (as if
    they were lost with the connection), closes; k+lost+1 is sent while no client stream
    is open (the lingering upstream stream holds it); the client resumes from k and gets
    k+1..k+lost+1, then the live k+lost+2.  A few lost are sent again by aigw (the last
    ``RECENT`` it delivered), more by the backend's replay, asked for once aigw's
    lingering stream is closed: either way no 409, no retry."""
    gateway, upstream = resumable_gateway
    opened = upstream.process.log().count("GET stream, Last-Event-ID _GET_stream")

    async def notify(n: int) -> None:
        assert await session.call("resumable__notify", {"n": n}) == f"sent {n}"

    async def lose(events: MemoryObjectReceiveStream[tuple[str | None, Any]], n: int) -> None:
        """Messages n+1..n+lost, which arrive; the client keeps n's id."""
        for m in range(n + 1, n + lost + 1):
            await notify(m)
            assert (await _logged(events))[0] == m

    async with httpx2.AsyncClient() as http:
        session = RawSession(http, gateway)
        await session.start()
        async with sse_events(session) as events:
            sent = 0
            while True:  # aigw's stream to the backend opens after the client's
                sent += 1
                await notify(sent)
                with anyio.move_on_after(1):
                    n, resume_from = await _logged(events)
                    break
            with anyio.fail_after(60):
                while n < sent:  # a late one of the tries: the others follow
                    n, resume_from = await _logged(events)
                await lose(events, n)
        first = n
        got: list[int] = []
        for _ in range(RESUMES):
            await until_closed(gateway)
            await notify(n + lost + 1)  # no client stream open: the lingering one holds it
            async with sse_events(session, resume_from) as events:
                with anyio.fail_after(60):
                    for _ in range(lost + 1):
                        got.append((await _logged(events))[0])
                    await notify(n + lost + 2)
                    n, resume_from = await _logged(events)
                    got.append(n)
                    await lose(events, n)
    assert got == list(range(first + 1, first + 1 + (lost + 2) * RESUMES)), got
    log = gateway.process.log()
    conflicts = [line for line in log.splitlines() if "HTTP 409" in line]
    assert conflicts == [], conflicts
    upstream_log = upstream.process.log()
    assert "Conflict" not in upstream_log, upstream_log
    resumed = upstream_log.count("GET stream, Last-Event-ID _GET_stream") - opened
    assert resumed == (RESUMES if asked else 0), upstream_log


async def test_a_request_held_past_the_linger_is_answered_with_an_error_at_once(
    py_gateway: Gateway,
) -> None:
    """The client leaves its GET stream; the backend then asks ``roots/list`` on its
    standalone stream (basic/transports "Listening for Messages from the Server"),
    which aigw holds for the next client stream; none comes within the linger, so
    the backend gets aigw's error (its own timeout is ``ROOTS_TIMEOUT``, 600 s)."""
    async with httpx2.AsyncClient() as http:
        session = RawSession(http, py_gateway)
        await session.start()
        async with session.stream() as stream:
            assert stream.status_code == 200
            await _announced(session, stream.aiter_lines())
        await until_closed(py_gateway)
        assert await session.call("py__roots-on-stream", {"tag": "lingered"}) == "asked"
        outcome = "waiting"
        for _ in range(240):  # bounded: well short of the backend's own timeout
            outcome = await session.call("py__roots-on-stream", {"tag": "lingered"})
            if outcome != "waiting":
                break
            await anyio.sleep(0.25)
    assert outcome.startswith("error -32601: roots/list: no client stream"), outcome
    assert "reached no client" in py_gateway.process.log(), py_gateway.process.log_tail()


async def test_a_ping_on_a_lingering_stream_is_answered_at_once(
    resumable_gateway: tuple[Gateway, Upstream],
) -> None:
    """The client leaves its GET stream; the TypeScript SDK server then pings on its
    standalone stream (``Server.ping()``): aigw, its peer, answers at once
    (basic/utilities/ping "respond promptly"), not holding it for the next client
    stream (which would have made it wait for the linger, 20 s, to end: the backend's
    stream then closed, and the next client stream needed a new one)."""
    gateway, upstream = resumable_gateway
    async with httpx2.AsyncClient() as http:
        session = RawSession(http, gateway)
        await session.start()
        async with sse_events(session) as events:
            for n in range(1, 31):  # aigw's stream to the backend opens after the client's
                assert await session.call("resumable__notify", {"n": n}) == f"sent {n}"
                with anyio.move_on_after(1):
                    await _logged(events)
                    break
            else:
                raise AssertionError("the backend's stream never reached the client's")
        opened = upstream.process.log().count("GET stream")
        await until_closed(gateway)
        pinged = await session.call("resumable__ping")
        async with sse_events(session) as events:  # takes the stream, still lingering
            assert await session.call("resumable__notify", {"n": 0}) == "sent 0"
            with anyio.fail_after(60):
                assert (await _logged(events))[0] == 0
    assert pinged == "pong {}", pinged
    assert upstream.process.log().count("GET stream") == opened, upstream.process.log()
