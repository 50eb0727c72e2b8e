"""A session ended by DELETE is ended on every process (MCP 2025-11-25 basic/transports
"Session Management": the server MUST answer its id with 404 afterwards), through a real
``redis-server`` (``sessions.redis_url``) shared by three aigw processes with one key.

The id is refused by the others once they hear of it (pub/sub: a short bounded wait),
by a process started after the DELETE (its catch-up from the ``aigw:ended:*`` keys,
before /readyz says ready), while a session not deleted keeps working everywhere.  With
Redis stopped, a DELETE still ends the session where it was served, the failure is
counted and logged, and once Redis is back the processes subscribe again by themselves
and the end Redis missed is told then.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.certificates import write_private_ca

from .aigw import INITIALIZE, MCP_HEADERS, Gateway, start_gateway, write_session_key
from .harness.processes import LOG_DIR, Process, until
from .harness.redis import start_redis
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.timeout(180)]

PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
ENDED = "Ended session ids"


def send(gateway: Gateway, session: str | None, body: Any = None, method: str = "POST") -> Any:
    """One request to ``gateway``'s MCP endpoint (in ``session``); the response."""
    headers = {**MCP_HEADERS, **({"Mcp-Session-Id": session} if session else {})}
    return httpx2.request(method, gateway.url, json=body, headers=headers, timeout=30)


def initialize(gateway: Gateway) -> str:
    response = send(gateway, None, INITIALIZE)
    assert response.status_code == 200, response.text
    session: str = response.headers["mcp-session-id"]
    return session


def status(gateway: Gateway, session: str) -> int:
    code: int = send(gateway, session, PING).status_code
    return code


def redis_command(port: int, *words: str) -> bytes:
    """One inline command to the Redis on ``port``; its raw reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as redis:
        redis.sendall(" ".join(words).encode() + b"\r\n")
        return redis.recv(65536)


class Deployment:
    """aigw processes sharing one session key and one ``sessions.redis_url``."""

    def __init__(self, backend: str, redis_port: int, sessions: str | None = None) -> None:
        """``sessions``: the keys naming Redis (default: ``redis://`` on ``redis_port``)."""
        self.backend = backend
        self.redis_port = redis_port
        self.sessions = sessions or f", redis_url: 'redis://127.0.0.1:{redis_port}/0'"
        self.key = write_session_key(tempfile.mkdtemp(prefix="aigw-ended-", dir=LOG_DIR))
        self.started: list[Gateway] = []

    def start(self) -> Gateway:
        """One more process, serving once /readyz says ready (its catch-up tried)."""
        gateway = start_gateway(
            [("py", self.backend)],
            session_key=self.key,
            sessions=self.sessions,
            metrics=True,
        )
        self.started.append(gateway)
        ready = until(lambda: httpx2.get(gateway.base + "/readyz", timeout=10).status_code == 200)
        assert ready, gateway.process.log_tail()
        return gateway

    def stop(self) -> None:
        for gateway in self.started:
            gateway.stop()


@pytest.fixture
def redis() -> Iterator[tuple[Process, int]]:
    process, port = start_redis()
    try:
        yield process, port
    finally:
        process.stop()


@pytest.fixture
def deployment(redis: tuple[Process, int], pyserver: Upstream) -> Iterator[Deployment]:
    deployment = Deployment(pyserver.url, redis[1])
    try:
        yield deployment
    finally:
        deployment.stop()


def test_a_session_deleted_on_one_process_is_404_on_every_other(deployment: Deployment) -> None:
    first, second, third = (deployment.start() for _ in range(3))
    ended, kept = initialize(first), initialize(first)
    assert [status(g, ended) for g in (first, second, third)] == [200, 200, 200]
    assert send(first, ended, method="DELETE").status_code in (200, 204)
    assert status(first, ended) == 404  # at once where it was served
    for other in (second, third):  # the others once they heard it
        assert until(lambda other=other: status(other, ended) == 404), other.process.log_tail()
    answer = send(third, ended, PING).json()
    assert answer["error"]["code"] == -32001, answer
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "py__echo", "arguments": {"text": "still here"}},
    }
    for gateway in (first, second, third):
        assert status(gateway, kept) == 200
        result = send(gateway, kept, call).json()
        assert result["result"]["content"][0]["text"] == "still here", result
    # Redis holds the id's digest, never the id, until the id would expire anyway.
    keys = redis_command(deployment.redis_port, "KEYS", "aigw:ended:*").split(b"\r\n")
    assert keys[0] == b"*1", keys
    assert len(keys[2]) == len(b"aigw:ended:") + 64
    assert ended.encode() not in keys[2]
    left = int(redis_command(deployment.redis_port, "PTTL", keys[2].decode())[1:])
    assert 0 < left <= 24 * 3600 * 1000  # sessions.ttl, 1 day by default
    # A process started after the DELETE caught up before saying it is ready.
    late = deployment.start()
    assert status(late, ended) == 404, late.process.log_tail()
    assert status(late, kept) == 200
    assert "following ended sessions at redis://127.0.0.1" in late.process.log()
    for gateway in (first, second, third, late):
        assert gateway.metric("aigw_session_store_failures_total") == 0.0


def test_with_redis_down_a_delete_ends_its_session_where_it_was_served(
    deployment: Deployment, redis: tuple[Process, int]
) -> None:
    first, second = deployment.start(), deployment.start()
    lost, later = initialize(first), initialize(first)
    redis[0].stop()
    assert send(first, lost, method="DELETE").status_code in (200, 204)
    assert status(first, lost) == 404
    assert status(second, lost) == 200  # not told: the documented cost of a Redis down
    assert until(lambda: (first.metric("aigw_session_store_failures_total") or 0) >= 2)
    assert "ended sessions store redis://127.0.0.1" in first.process.log()
    assert "Traceback" not in first.process.log() + second.process.log()
    restarted, _ = start_redis(port=deployment.redis_port)
    try:
        # Both subscribe again by themselves (a backoff of at most 30 s); a DELETE then
        # reaches the other process again.
        subscribed = "following ended sessions at"
        for gateway in (first, second):
            assert until(lambda g=gateway: g.process.log().count(subscribed) >= 2, 60.0)
        # The end Redis missed was told again; a new DELETE is told as usual.
        assert until(lambda: status(second, lost) == 404), second.process.log_tail()
        assert send(first, later, method="DELETE").status_code in (200, 204)
        assert until(lambda: status(second, later) == 404), second.process.log_tail()
    finally:
        restarted.stop()


def test_an_end_redis_missed_is_told_as_its_process_stops(
    deployment: Deployment, redis: tuple[Process, int]
) -> None:
    """Redis down: ``first`` and ``third`` each serve a DELETE that Redis misses.
    ``third`` stops while Redis is still down: its end is lost with it, and it says so
    (a warning naming how many).  Redis comes back and ``first`` stops at once, before
    its subscription's backoff would have told the end: it tells it on the way out, so
    ``second`` answers that id 404 once it subscribed again, not only until the id
    expires."""
    first, second, third = (deployment.start() for _ in range(3))
    told, lost = initialize(first), initialize(third)
    redis[0].stop()
    assert send(first, told, method="DELETE").status_code in (200, 204)
    assert send(third, lost, method="DELETE").status_code in (200, 204)
    for gateway in (first, third):  # the end failed: kept to be told again
        assert until(lambda g=gateway: (g.metric("aigw_session_store_failures_total") or 0) >= 2)
    third.stop()
    assert "stopping with 1 session end(s) Redis did not take" in third.process.log()
    time.sleep(4.0)  # first's backoff grows past the moment it is stopped below
    restarted, _ = start_redis(port=deployment.redis_port)
    try:
        first.stop()
        assert "Redis did not take" not in first.process.log(), first.process.log_tail()
        assert until(lambda: status(second, told) == 404, 60.0), second.process.log_tail()
        assert status(second, lost) == 200  # the end lost with third: accepted until its ttl
        assert "Traceback" not in first.process.log() + second.process.log() + third.process.log()
    finally:
        restarted.stop()


def test_a_frozen_redis_fails_the_call_at_sessions_redis_timeout(
    redis: tuple[Process, int], pyserver: Upstream
) -> None:
    """``sessions.redis_timeout: 1s``, ``redis-server`` SIGSTOPped (it accepts and answers
    nothing): the DELETE is answered and ends its session where it was served; the end's
    SET gets no reply within the configured bound, named in the warning (not 5 s)."""
    process, port = redis
    sessions = f", redis_url: 'redis://127.0.0.1:{port}/0', redis_timeout: 1s"
    deployment = Deployment(pyserver.url, port, sessions)
    try:
        gateway = deployment.start()
        ended = initialize(gateway)
        os.kill(process.pid, signal.SIGSTOP)
        try:
            assert send(gateway, ended, method="DELETE").status_code in (200, 204)
            assert status(gateway, ended) == 404
            assert until(lambda: (gateway.metric("aigw_session_store_failures_total") or 0) >= 1)
        finally:
            os.kill(process.pid, signal.SIGCONT)
        log = gateway.process.log()
        # The end's SET, or a heartbeat's PING if one fell due meanwhile (one line per
        # 10 s): either way the bound named is the configured one.
        assert "no reply within 1 s" in log, gateway.process.log_tail()
        assert "Traceback" not in log
    finally:
        deployment.stop()


def test_over_tls_with_the_redis_ca_file(pyserver: Upstream) -> None:
    """``rediss://`` and ``sessions.redis_ca_file``: a TLS-only ``redis-server`` whose
    certificate a private CA signed carries the end from one process to the other."""
    ca, cert, key = write_private_ca(tempfile.mkdtemp(prefix="aigw-ended-ca-", dir=LOG_DIR))
    redis, port = start_redis(tls=(ca, cert, key))
    url = f"rediss://127.0.0.1:{port}/0"
    deployment = Deployment(pyserver.url, port, f", redis_url: '{url}', redis_ca_file: '{ca}'")
    try:
        first, second = deployment.start(), deployment.start()
        ended = initialize(first)
        assert status(second, ended) == 200
        assert send(first, ended, method="DELETE").status_code in (200, 204)
        assert until(lambda: status(second, ended) == 404), second.process.log_tail()
        assert f"following ended sessions at {url}" in second.process.log()
    finally:
        deployment.stop()
        redis.stop()
