"""Hostile input through Redis, end to end (docs/security.md, "Inputs between processes").

Three aigw processes share one key file and one real ``redis-server`` for their limits
and ended sessions; a fourth has both pointed at a fake Redis that answers every
command with broken RESP (arrays nested 5 000 deep, an HTTP answer, an integer of
5 000 digits, a reply longer than aigw buffers, a limiter reply naming no rule, replies
to nothing, random bytes) or never answers.  The test PUBLISHes garbage on every
channel the processes follow (and ``aigw:elicitation``, followed only with
``user_oauth`` backends), a flood of it, and opens GET streams with a ``Last-Event-ID``
nested deeper than Python's JSON decoder recurses.  Then the official SDK client's
``tools/call`` is served by each of the four processes; a 70 KiB note on every channel is
skipped and counted, and a DELETE on one process right after is heard by the others on
the subscriptions they made at the start (none was cut); the garbage was counted in
``aigw_session_store_failures_total``, and no process logged a traceback.
"""

from __future__ import annotations

import base64
import itertools
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from aigw.gateway import elicitation_completions, ended_sessions, shared_stream_probes
from aigw.gateway.redis_client import RESPReader, encode

from .aigw import Gateway, open_session, start_gateway, write_session_key
from .harness.oauth_client import connect_plain
from .harness.processes import LOG_DIR, until
from .harness.redis import start_redis
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

DIGEST = b"%064x" % 7
#: What anyone who can PUBLISH on aigw's Redis may send on each of its channels.
GARBAGE = [
    DIGEST + b" " + b"9" * 5000,
    DIGEST + b" " + b"9" * 400,
    b"\t0" * 32 + b" 5000",
    b"\xff\xfe" * 40,
    os.urandom(60_000),
    b"",
    b"p " + b"zz" * 32,
    b"o " + DIGEST,
    b"l " + DIGEST + b" extra",
    b"[" * 3000,
    b'{"n":' + b"[" * 3000 + b"}",
    b'{"n":"e","i":"x","s":"y","d":"' + b"\t0" * 32 + b'"}',
]
#: A note longer than aigw buffers (``MAX_REPLY_BYTES``): skipped, not a cut.
LONG_NOTE = 70 * 1024
#: Well-formed notes naming sessions nobody holds: a flood of them costs a lookup each.
FLOOD = [b"%s %064x" % (kind, n) for n in range(1500) for kind in (b"p", b"l")]
CHANNELS = (
    ended_sessions.CHANNEL,
    shared_stream_probes.CHANNEL,
    elicitation_completions.CHANNEL,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def redis_call(port: int, *commands: list[bytes]) -> list[Any]:
    """Commands pipelined to the Redis on ``port`` (binary-safe); their replies, read
    by aigw's own RESP2 parser."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as redis:
        redis.sendall(b"".join(encode(*command) for command in commands))
        reader, replies = RESPReader(), []
        while len(replies) < len(commands):
            chunk = redis.recv(65536)
            assert chunk, replies
            replies += reader.feed(chunk)
    return replies


class BrokenRedis(socketserver.ThreadingTCPServer):
    """Answers every read with the next of ``REPLIES`` (None: nothing, ever again)."""

    daemon_threads = True
    allow_reuse_address = True
    REPLIES: list[bytes | None] = [
        b"*1\r\n" * 5000 + b":1\r\n",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        b":" + b"9" * 5000 + b"\r\n",
        b"$99999999999\r\n" + b"x" * 70_000,
        b"*2\r\n:99\r\n:0\r\n",
        b"+OK\r\n" * 5,
        os.urandom(4096),
        None,
    ]

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), BrokenHandler)
        self.replies = itertools.cycle(self.REPLIES)
        self.lock = threading.Lock()
        self.answered = 0

    def next_reply(self) -> bytes | None:
        with self.lock:
            self.answered += 1
            return next(self.replies)


class BrokenHandler(socketserver.BaseRequestHandler):
    server: BrokenRedis

    def handle(self) -> None:
        silent = False
        try:
            while self.request.recv(65536):
                reply = None if silent else self.server.next_reply()
                if reply is None:
                    silent = True
                    continue
                self.request.sendall(reply)
        except OSError:
            return  # aigw cut the connection: what it should do


@pytest.fixture
def broken_redis() -> Iterator[int]:
    server = BrokenRedis()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def redis_config(port: int, timeout: str) -> tuple[str, str]:
    """The ``limits`` section and ``sessions`` keys naming the Redis on ``port`` (each
    call bounded by ``timeout``, when given): an in-flight bound and a rate, so every
    call runs the take script."""
    bound = f"  redis_timeout: {timeout}\n" if timeout else ""
    limits = (
        "limits:\n"
        f"  redis_url: redis://127.0.0.1:{port}/0\n"
        f"  on_redis_error: open\n{bound}"
        "  rules:\n"
        "    - {per: sub, in_flight: 8}\n"
        "    - {per: sub, rate: 1000/s, burst: 1000}\n"
    )
    sessions = f", redis_url: 'redis://127.0.0.1:{port}/0'"
    return limits, sessions + (f", redis_timeout: {timeout}" if timeout else "")


@pytest.fixture
def redis() -> Iterator[int]:
    process, port = start_redis()
    with process:  # stopped on exit
        yield port


@pytest.fixture
def gateways(pyserver: Upstream, redis: int, broken_redis: int) -> Iterator[list[Gateway]]:
    """Three processes on the real Redis, a fourth on the broken one; all ready."""
    key = write_session_key(tempfile.mkdtemp(prefix="aigw-hostile-", dir=LOG_DIR))
    started: list[Gateway] = []
    try:
        for port, bound in ((redis, ""),) * 3 + ((broken_redis, "1s"),):
            limits, sessions = redis_config(port, bound)
            started.append(
                start_gateway(
                    [("py", pyserver.url)],
                    extra=limits,
                    sessions=sessions,
                    session_key=key,
                    metrics=True,
                )
            )
        for gateway in started:
            assert until(lambda g=gateway: ready(g)), gateway.process.log_tail()
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def ready(gateway: Gateway) -> bool:
    return httpx2.get(gateway.base + "/readyz", timeout=10).status_code == 200


async def echo_through(gateway: Gateway, text: str) -> str:
    """The official SDK client's ``tools/call`` through ``gateway``: its text."""
    async with connect_plain(gateway.url, mode="legacy") as client:
        return text_of(await client.call_tool("py__echo", {"text": text}))


def failures(gateway: Gateway) -> float:
    return gateway.metric("aigw_session_store_failures_total") or 0.0


def subscriptions(gateway: Gateway) -> int:
    """The subscriptions ``gateway`` made (each logs once it has caught up)."""
    return gateway.process.log().count("following ended sessions at")


async def test_garbage_on_every_channel_and_broken_resp_leave_every_process_serving(
    gateways: list[Gateway], redis: int
) -> None:
    shared, broken = gateways[:3], gateways[3]
    for number, gateway in enumerate(gateways):
        assert await echo_through(gateway, f"before {number}") == f"before {number}"

    # What the three follow (PUBSUB NUMSUB: channel, subscribers, ...).
    [numsub] = redis_call(redis, [b"PUBSUB", b"NUMSUB", *CHANNELS])
    followers = dict(zip(numsub[::2], numsub[1::2], strict=True))
    assert followers == {
        ended_sessions.CHANNEL: 3,
        shared_stream_probes.CHANNEL: 3,
        elicitation_completions.CHANNEL: 0,  # followed with user_oauth backends only
    }
    before = [failures(gateway) for gateway in shared]
    garbage = [[b"PUBLISH", channel, note] for channel in CHANNELS for note in GARBAGE]
    flood = [[b"PUBLISH", shared_stream_probes.CHANNEL, note] for note in FLOOD]
    heard = redis_call(redis, *garbage, *flood)
    assert heard == [followers[c[1]] for c in garbage] + [3] * len(flood)

    # Each process counted the malformed notes of the two channels it follows (the
    # flood's are well formed and name no stream held: a lookup each, nothing counted).
    malformed = 2 * len(GARBAGE)

    def counted(since: list[float]) -> list[float]:
        return [failures(g) - b for g, b in zip(shared, since, strict=True)]

    assert until(lambda: all(n >= malformed for n in counted(before))), counted(before)

    # A Last-Event-ID nested deeper than json.loads recurses: the stream opens.
    deep = base64.urlsafe_b64encode(b"[" * 3000).decode()
    for gateway in gateways:
        headers = {**open_session(gateway.url), "Accept": "text/event-stream"}
        headers["Last-Event-ID"] = deep
        with httpx2.stream("GET", gateway.url, headers=headers, timeout=30) as stream:
            assert stream.status_code == 200
            assert next(stream.iter_raw()).startswith(b": aigw stream open")

    # Every process still serves the SDK client.
    for number, gateway in enumerate(gateways):
        assert await echo_through(gateway, f"after {number}") == f"after {number}"

    # A note longer than aigw holds (70 KiB) on every channel: skipped as it comes and
    # counted, the subscription kept (it was cut, and notes sent in the next second lost).
    made = [subscriptions(gateway) for gateway in shared]
    assert made == [1, 1, 1], [g.process.log_tail() for g in shared]
    skipped = [failures(gateway) for gateway in shared]
    long = [[b"PUBLISH", channel, os.urandom(LONG_NOTE)] for channel in CHANNELS]
    assert redis_call(redis, *long) == [followers[c[1]] for c in long]
    assert until(lambda: all(n >= 2 for n in counted(skipped))), counted(skipped)

    # The subscriptions lived through it: a DELETE on one is a 404 on the others, heard
    # on the subscription made at the start (none was made again: no catch-up told them).
    session = open_session(shared[0].url)
    deleted = httpx2.delete(shared[0].url, headers=session, timeout=30)
    assert deleted.status_code in (200, 204), deleted.text
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for gateway in shared[1:]:

        def refused(g: Gateway = gateway) -> bool:
            return httpx2.post(g.url, json=ping, headers=session, timeout=30).status_code == 404

        assert until(refused), gateway.process.log_tail()
    assert [subscriptions(gateway) for gateway in shared] == made

    # The broken Redis was asked, each of its answers a counted failure; the process
    # served all along (on_redis_error: open).
    assert (broken.metric("aigw_limiter_store_failures_total") or 0.0) > 0
    assert failures(broken) > 0
    for gateway in gateways:
        assert "Traceback" not in gateway.process.log(), gateway.process.log_tail(80)
        assert gateway.process.alive()
