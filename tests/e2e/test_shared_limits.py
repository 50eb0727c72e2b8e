"""Limits shared through a real ``redis-server`` hold across three aigw processes (issue
15): a rate (one session, requests sent round-robin, no more than the bucket allows) and
a bound on requests in flight (no more slow calls run at once than it allows, whichever
process serves them; a killed process's places come free when their leases expire);
with Redis stopped or frozen, ``on_redis_error`` decides within ``redis_timeout``."""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from aigw.gateway.redis_buckets import LEASE_SCRIPT, TAKE_SCRIPT

from .aigw import (
    Gateway,
    open_session,
    post_json,
    start_gateway,
    write_session_key,
)
from .harness.processes import LOG_DIR, until
from .harness.redis import evaluate, live_leases, start_redis
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.timeout(120)]

RATE = 5  # tokens a second, and the burst
SENT = 15


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    process, port = start_redis()
    try:
        yield port
    finally:
        process.stop()


def start_gateways(
    upstream: Upstream, limits: str, count: int = 3, metrics: bool = False, sessions: str = ""
) -> list[Gateway]:
    """``count`` aigw processes sharing one session key, each with these ``limits`` (and
    more ``sessions`` keys)."""
    key = write_session_key(tempfile.mkdtemp(prefix="aigw-limits-", dir=LOG_DIR))
    started: list[Gateway] = []
    try:
        for _ in range(count):
            backends = [("py", upstream.url)]
            started.append(
                start_gateway(
                    backends, extra=limits, session_key=key, metrics=metrics, sessions=sessions
                )
            )
    except BaseException:
        for gateway in started:
            gateway.stop()
        raise
    return started


@pytest.fixture(scope="module")
def gateways(redis_port: int, pyserver: Upstream) -> Iterator[list[Gateway]]:
    limits = (
        "limits:\n"
        f"  redis_url: redis://127.0.0.1:{redis_port}/0\n"
        # A loaded machine may be slow: a refusal must come from the bucket, not the
        # limiter giving up (closed: a failure shows as a 503, never as a success).
        "  redis_timeout: 5s\n"
        "  on_redis_error: closed\n"
        f"  rules:\n    - {{per: sub, rate: {RATE}/s, burst: {RATE}}}\n"
    )
    started = start_gateways(pyserver, limits)
    try:
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def test_a_rate_holds_across_three_processes(gateways: list[Gateway], redis_port: int) -> None:
    session = open_session(gateways[0].url)
    ok: list[int] = []
    limited: list[tuple[dict[str, str], Any]] = []
    started = time.monotonic()
    for number in range(SENT):
        ping = {"jsonrpc": "2.0", "id": number + 1, "method": "ping"}
        status, found, body = post_json(gateways[number % 3].url, session, ping)
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


def test_the_scripts_lease_places_under_a_bound(redis_port: int) -> None:
    bound, bucket = "aigw:rl:test:bound", "aigw:rl:test:bucket"

    def lease(member: str, ttl_ms: str = "60000", key: str = bound) -> list[str]:
        return evaluate(redis_port, TAKE_SCRIPT, [key], "0", member, ttl_ms, "1", db=2)

    def renew(ttl_ms: str, member: str) -> list[str]:
        return evaluate(redis_port, LEASE_SCRIPT, [bound], ttl_ms, member, db=2)

    assert lease("a") == ["0", "0"]
    assert lease("b") == ["1", "0"]  # the bound (KEYS[1]) is full
    assert renew("0", "a") == ["0"]  # released
    assert lease("b") == ["0", "0"]
    assert renew("60000", "c") == ["1"]  # a renewal adds a lease Redis lost...
    assert lease("d") == ["1", "0"]  # ... and counts it
    ttl = subprocess.run(
        ["redis-cli", "-p", str(redis_port), "-n", "2", "PTTL", bound], capture_output=True
    )
    assert 0 < int(ttl.stdout) <= 60000  # the key goes with its last lease
    # An expired lease is dropped by the next take.
    assert lease("e", "1", "aigw:rl:test:short") == ["0", "0"]
    time.sleep(0.01)
    assert lease("f", "60000", "aigw:rl:test:short") == ["0", "0"]
    # A bucket that refuses leaves the bound alone, and the other way round.
    take_both = [bucket, "aigw:rl:test:both"]
    both = ("1", "g", "60000", "0.001", "1", "1")
    assert evaluate(redis_port, TAKE_SCRIPT, take_both, *both, db=2) == ["0", "0"]
    assert evaluate(redis_port, TAKE_SCRIPT, take_both, *both, db=2)[0] == "1"
    assert evaluate(
        redis_port, TAKE_SCRIPT, ["aigw:rl:test:both"], "0", "h", "60000", "2", db=2
    ) == [
        "0",
        "0",
    ]


# In-flight bounds: a database of their own, so the rate test above sees its key alone.
BOUND = 2  # requests in flight per user, in all the processes together
LEASE_TTL = 4  # seconds a killed process's places outlive its last renewal
STREAMS = 2  # sessions.max_streams_per_user


def in_flight_limits(redis_port: int, on_error: str, timeout: str = "2s") -> str:
    """Generous Redis answers for a loaded machine (closed: a late one is a 503, never a
    success), as long as a lease lives two of them (``limits.lease_ttl``)."""
    return (
        "limits:\n"
        f"  redis_url: redis://127.0.0.1:{redis_port}/1\n"
        f"  redis_timeout: {timeout}\n"
        f"  on_redis_error: {on_error}\n"
        f"  lease_ttl: {LEASE_TTL}s\n"
        f"  rules:\n    - {{per: sub, in_flight: {BOUND}}}\n"
    )


@pytest.fixture(scope="module")
def bounded(redis_port: int, pyserver: Upstream) -> Iterator[list[Gateway]]:
    limits = in_flight_limits(redis_port, "closed")
    started = start_gateways(pyserver, limits, sessions=f", max_streams_per_user: {STREAMS}")
    try:
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def call(rid: int, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    params = {"name": f"py__{tool}", "arguments": arguments or {}}
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}


def hold(gateway: Gateway, session: dict[str, str], rid: int) -> http.client.HTTPConnection:
    """A ``slow`` call sent and left running (two minutes): closing the connection
    hangs up, which ends the call and gives its place back."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    body = json.dumps(call(rid, "slow", {"seconds": 120, "steps": 120}))
    connection.request("POST", urlsplit(gateway.url).path, body, session)
    return connection


def slow_stats(gateway: Gateway, session: dict[str, str]) -> dict[str, int]:
    status, _, body = post_json(gateway.url, session, call(9999, "slow-stats"))
    assert status == 200, body
    stats: dict[str, int] = json.loads(body["result"]["content"][0]["text"])
    return stats


def assert_in_flight_refusal(status: int, found: dict[str, str], body: Any) -> None:
    assert status == 429, body
    assert found["retry-after"] == "1"
    error = body["error"]
    assert error["code"] == -32016
    assert error["data"] == {"limit": "sub:0", "retry_after": 1}
    assert f"at most {BOUND} per sub" in error["message"]


def test_an_in_flight_bound_holds_across_three_processes(
    bounded: list[Gateway], redis_port: int
) -> None:
    session = open_session(bounded[0].url)
    before = slow_stats(bounded[0], session)
    held = [hold(bounded[number], session, 100 + number) for number in range(BOUND)]
    try:
        assert until(lambda: live_leases(redis_port) == BOUND), live_leases(redis_port)
        # Without the shared bound each process would run BOUND calls; every one refuses.
        for number, gateway in enumerate(bounded):
            status, found, body = post_json(gateway.url, session, call(200 + number, "echo"))
            assert_in_flight_refusal(status, found, body)
        assert live_leases(redis_port) == BOUND  # a refusal takes no place
    finally:
        for connection in held:
            connection.close()  # the client hangs up: the calls end, their places free
    assert until(lambda: live_leases(redis_port) == 0), live_leases(redis_port)
    for number, gateway in enumerate(bounded):
        status, _, body = post_json(gateway.url, session, call(300 + number, "echo", {"text": "x"}))
        assert status == 200, body
    after = until(lambda: (s := slow_stats(bounded[1], session))["cancelled"] >= 2 and s)
    assert after["started"] - before["started"] == BOUND  # the refused ones never ran
    assert after["cancelled"] - before["cancelled"] == BOUND


def open_stream(
    gateway: Gateway, session: dict[str, str]
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """A session's GET stream, open once the status is in (or its refusal)."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    headers = {**session, "Accept": "text/event-stream"}
    del headers["Content-Type"]
    connection.request("GET", urlsplit(gateway.url).path, headers=headers)
    return connection, connection.getresponse()


def test_stream_bounds_hold_across_processes(bounded: list[Gateway], redis_port: int) -> None:
    """One GET stream per session and ``max_streams_per_user``, in all the processes."""
    first, second, third = (open_session(bounded[0].url) for _ in range(3))
    connections = []
    try:
        connection, response = open_stream(bounded[0], first)
        connections.append(connection)
        assert response.status == 200
        connection, response = open_stream(bounded[1], first)  # the same session, elsewhere
        connections.append(connection)
        assert response.status == 409
        assert json.loads(response.read())["error"]["data"] == {"limit": "session", "max": 1}
        connection, response = open_stream(bounded[1], second)
        connections.append(connection)
        assert response.status == 200
        connection, response = open_stream(bounded[0], third)  # the user's third stream
        connections.append(connection)
        assert response.status == 429
        assert response.headers["Retry-After"] == "10"
        error = json.loads(response.read())["error"]
        assert error["code"] == -32014
        assert error["data"] == {"limit": "sessions.max_streams_per_user", "max": STREAMS}
        assert live_leases(redis_port, "aigw:st:user:*") == STREAMS
    finally:
        for connection in connections:
            connection.close()
    assert until(lambda: live_leases(redis_port, "aigw:st:*") == 0)
    connection, response = open_stream(bounded[1], third)
    connection.close()
    assert response.status == 200


def test_a_killed_process_frees_its_places_when_their_leases_expire(
    bounded: list[Gateway], redis_port: int
) -> None:
    session = open_session(bounded[0].url)
    victim = bounded[2]
    survivor = hold(bounded[1], session, 400)
    dying = hold(victim, session, 401)
    try:
        assert until(lambda: live_leases(redis_port) == BOUND), live_leases(redis_port)
        os.kill(victim.process.pid, signal.SIGKILL)
        assert until(lambda: not victim.process.alive())
        status, found, body = post_json(bounded[0].url, session, call(402, "echo"))
        assert_in_flight_refusal(status, found, body)
        # Nobody gives the dead process's place back: it lapses LEASE_TTL after its last
        # renewal.  The survivor's lease, older than that by then, is renewed and stays.
        assert until(lambda: live_leases(redis_port) == 1), live_leases(redis_port)
        status, _, body = post_json(bounded[0].url, session, call(403, "echo", {"text": "x"}))
        assert status == 200, body
        assert live_leases(redis_port) == 1
    finally:
        survivor.close()
        dying.close()
    assert until(lambda: live_leases(redis_port) == 0), live_leases(redis_port)


def test_redis_frozen_or_stopped_fails_open_or_closed_within_the_timeout(
    pyserver: Upstream,
) -> None:
    redis, port = start_redis()
    opened: list[Gateway] = []
    closed: list[Gateway] = []
    try:
        opened = start_gateways(pyserver, in_flight_limits(port, "open", "1s"), 1, True)
        closed = start_gateways(pyserver, in_flight_limits(port, "closed", "1s"), 1, True)
        both = [(opened[0], open_session(opened[0].url)), (closed[0], open_session(closed[0].url))]

        def answers() -> list[tuple[int, dict[str, str], Any]]:
            echo = call(500, "echo", {"text": "x"})
            return [post_json(gateway.url, session, echo) for gateway, session in both]

        assert [status for status, _, _ in answers()] == [200, 200]
        # Frozen: connections are accepted, nothing is answered; each request waits one
        # redis_timeout at most.  Then stopped: connections are refused.
        os.kill(redis.pid, signal.SIGSTOP)
        try:
            frozen = answers()
        finally:
            os.kill(redis.pid, signal.SIGCONT)
        redis.stop()
        for (open_status, _, body), (closed_status, found, refusal) in (frozen, answers()):
            assert open_status == 200, body
            assert closed_status == 503, refusal
            assert found["retry-after"] == "1"
            assert refusal["error"]["code"] == -32016
            assert refusal["error"]["data"] == {"limit": "limits.redis_url", "retry_after": 1}
        for gateway in (opened[0], closed[0]):
            assert (gateway.metric("aigw_limiter_store_failures_total") or 0) >= 2
            assert "rate limiter store unavailable" in gateway.process.log()
    finally:
        for gateway in opened + closed:
            gateway.stop()
        redis.stop()
