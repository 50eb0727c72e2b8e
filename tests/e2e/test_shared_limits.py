"""A rate limit shared through a real ``redis-server`` holds across three aigw processes
(issue 15): one session, requests sent round-robin, and no more than the bucket allows."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from aigw.gateway.redis_buckets import TAKE_SCRIPT

from .aigw import INITIALIZE, Gateway, start_gateway, write_session_key
from .harness.processes import LOG_DIR, Process, free_port, start_process
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.timeout(120)]

RATE = 5  # tokens a second, and the burst
SENT = 15
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-11-25",
}


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    process: Process = start_process(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        ready_line_regex=r"[Rr]eady to accept connections",
        timeout=20,
        name="redis-server",
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as check:
            check.sendall(b"PING\r\n")
            assert check.recv(16).startswith(b"+PONG")
        yield port
    finally:
        process.stop()


@pytest.fixture(scope="module")
def gateways(redis_port: int, pyserver: Upstream) -> Iterator[list[Gateway]]:
    directory = tempfile.mkdtemp(prefix="aigw-limits-", dir=LOG_DIR)
    key = write_session_key(directory)
    limits = (
        "limits:\n"
        f"  redis_url: redis://127.0.0.1:{redis_port}/0\n"
        # A loaded machine may be slow: a refusal must come from the bucket, not the
        # limiter giving up (closed: a failure shows as a 503, never as a success).
        "  redis_timeout: 5s\n"
        "  on_redis_error: closed\n"
        f"  rules:\n    - {{per: sub, rate: {RATE}/s, burst: {RATE}}}\n"
    )
    started: list[Gateway] = []
    try:
        for _ in range(3):
            started.append(start_gateway([("py", pyserver.url)], extra=limits, session_key=key))
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def post(url: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
    """POST JSON; the status, headers (lower-case names) and the JSON body."""
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, found, data = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        status, found, data = error.code, error.headers, error.read()
    return status, {k.lower(): v for k, v in found.items()}, json.loads(data)


def test_a_rate_holds_across_three_processes(gateways: list[Gateway], redis_port: int) -> None:
    status, found, body = post(
        gateways[0].url,
        HEADERS,
        INITIALIZE,
    )
    assert status == 200, body
    session = {**HEADERS, "Mcp-Session-Id": found["mcp-session-id"]}
    ok: list[int] = []
    limited: list[tuple[dict[str, str], Any]] = []
    started = time.monotonic()
    for number in range(SENT):
        ping = {"jsonrpc": "2.0", "id": number + 1, "method": "ping"}
        status, found, body = post(gateways[number % 3].url, session, ping)
        if status == 200:
            assert body["result"] == {}, body
            ok.append(number % 3)
        else:
            assert status == 429, body
            limited.append((found, body))
    elapsed = time.monotonic() - started
    # The burst, plus what refilled while the requests were sent (on a loaded machine
    # that may be more than nothing); without a shared bucket each process would
    # allow RATE, 15 in all.
    assert RATE <= len(ok) <= RATE + math.floor(RATE * elapsed), (len(ok), elapsed)
    assert len(set(ok[:3])) == 3  # the first successes came from each process
    assert len(ok) + len(limited) == SENT
    for found, body in limited:
        assert found["retry-after"] == "1"
        error = body["error"]
        assert error["code"] == -32016
        assert error["data"] == {"limit": "sub:0", "retry_after": 1}
    # The bucket's key holds a hash of the user, never the user.
    with socket.create_connection(("127.0.0.1", redis_port), timeout=5) as redis:
        redis.sendall(b"KEYS *\r\n")
        keys = redis.recv(4096).split(b"\r\n")
    assert keys[0] == b"*1", keys
    assert keys[2].startswith(b"aigw:rl:0:sub:"), keys
    assert len(keys[2]) == len(b"aigw:rl:0:sub:") + 32


def evaluate(port: int, script: bytes, keys: list[str], *argv: str) -> list[str]:
    """A script run by ``redis-cli``: its reply, one value a line."""
    command = ["redis-cli", "-p", str(port), "EVAL", script.decode(), str(len(keys))]
    done = subprocess.run([*command, *keys, *argv], capture_output=True, check=True, timeout=10)
    return done.stdout.decode().split()


def take(port: int, buckets: list[str], *argv: str) -> list[str]:
    """The take script on buckets only (no lease): rate and size of each."""
    return evaluate(port, TAKE_SCRIPT, buckets, str(len(buckets)), "", "1000", *argv)


def test_the_script_takes_all_buckets_or_none(redis_port: int) -> None:
    roomy, tight = "aigw:rl:test:roomy", "aigw:rl:test:tight"
    # rate 1/s, size 5 and rate 0.5/s, size 1: the first take empties the tight one.
    assert take(redis_port, [roomy, tight], "1.0", "5", "0.5", "1") == ["0", "0"]
    refused, wait_ms = take(redis_port, [roomy, tight], "1.0", "5", "0.5", "1")
    assert refused == "2"  # the second bucket, counted from 1
    assert 0 < int(wait_ms) <= 2000  # a token every 2 s
    # The refused take left the roomy bucket alone: 4 tokens, then empty.
    takes = [take(redis_port, [roomy], "0.001", "5")[0] for _ in range(5)]
    assert takes == ["0", "0", "0", "0", "1"]
    ttl = subprocess.run(
        ["redis-cli", "-p", str(redis_port), "PTTL", tight], capture_output=True, check=True
    )
    assert 0 < int(ttl.stdout) <= 3000  # expires once the bucket would be full again
