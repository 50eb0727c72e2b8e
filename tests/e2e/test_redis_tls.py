"""Limits shared through a real ``redis-server`` that speaks TLS only (``rediss://``):
two aigw processes trusting the private CA in ``limits.redis_ca_file`` share one bucket;
a process trusting another CA reaches no Redis at all and, ``on_redis_error: closed``,
refuses with 503 naming the certificate in its log, never falling back to plaintext."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.certificates import write_private_ca

from .aigw import (
    Gateway,
    open_session,
    post_json,
    start_gateway,
    write_session_key,
)
from .harness.processes import LOG_DIR
from .harness.redis import start_redis
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.timeout(120)]

BURST = 3


@pytest.fixture(scope="module")
def cas() -> tuple[tuple[str, str, str], str]:
    """The Redis server's private CA with its certificate and key, and another CA."""
    ours = tempfile.mkdtemp(prefix="aigw-redis-ca-", dir=LOG_DIR)
    other = tempfile.mkdtemp(prefix="aigw-redis-other-ca-", dir=LOG_DIR)
    return write_private_ca(ours), write_private_ca(other)[0]


@pytest.fixture(scope="module")
def redis_port(cas: tuple[tuple[str, str, str], str]) -> Iterator[int]:
    process, port = start_redis(tls=cas[0])
    try:
        yield port
    finally:
        process.stop()


def limits(port: int, ca_file: str) -> str:
    return (
        "limits:\n"
        f"  redis_url: rediss://127.0.0.1:{port}/0\n"
        f"  redis_ca_file: {ca_file}\n"
        "  redis_timeout: 5s\n"  # a loaded machine: the bucket refuses, not the timeout
        "  on_redis_error: closed\n"
        f"  rules:\n    - {{per: sub, rate: 1/m, burst: {BURST}}}\n"
    )


@pytest.fixture(scope="module")
def gateways(
    redis_port: int, cas: tuple[tuple[str, str, str], str], pyserver: Upstream
) -> Iterator[list[Gateway]]:
    """Two processes trusting the server's CA, one trusting another CA; one session key."""
    key = write_session_key(tempfile.mkdtemp(prefix="aigw-redis-tls-", dir=LOG_DIR))
    (ca, _, _), other_ca = cas
    started: list[Gateway] = []
    try:
        for trusted in (ca, ca, other_ca):
            extra = limits(redis_port, trusted)
            started.append(start_gateway([("py", pyserver.url)], extra=extra, session_key=key))
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def test_two_processes_share_one_bucket_over_tls(gateways: list[Gateway]) -> None:
    first, second, _ = gateways
    session = open_session(first.url)
    statuses = []
    for number in range(2 * BURST):
        ping = {"jsonrpc": "2.0", "id": number + 1, "method": "ping"}
        status, _, body = post_json((first, second)[number % 2].url, session, ping)
        statuses.append(status)
        if status == 429:
            assert body["error"]["code"] == -32016, body
    # One bucket of BURST for both (a token a minute refills none meanwhile): without
    # Redis each process would allow BURST, 2 x BURST in all.
    assert statuses == [200] * BURST + [429] * BURST, statuses


def test_a_server_another_ca_signed_is_never_used(gateways: list[Gateway]) -> None:
    *_, distrusting = gateways
    session = open_session(distrusting.url)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    status, _, body = post_json(distrusting.url, session, ping)
    assert status == 503, body
    deadline = time.monotonic() + 10  # the log line may trail the answer
    while "certificate verify failed" not in distrusting.process.log():
        assert time.monotonic() < deadline, "no certificate failure logged"
        time.sleep(0.2)
