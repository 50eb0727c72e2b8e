"""A backend that takes a GET stream's request and never sends its response head, while
its POSTs work (``upstreams/faulty.py``, ``/nohead``): aigw gives up on the head after the
backend's ``timeout`` (1 s here) and closes that connection, tries again after its
back-off, and the client's GET stream stays open throughout; neither aigw's open file
descriptors nor the backend's accepted streams pile up over the retries."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import httpx2
import pytest

from .aigw import INITIALIZE, Gateway, start_gateway
from .harness.processes import Process

pytestmark = [pytest.mark.timeout(90)]

#: Attempts the backend sees dropped before the test is satisfied: with a 1 s head
#: timeout and a back-off of 0.5, 1, 2 s, about 7 s.
DROPS = 3


@pytest.fixture(scope="module")
def gateway(faulty: Process) -> Iterator[Gateway]:
    assert faulty.ready_match is not None
    base = faulty.ready_match.group(1)
    backend = f"  - name: nohead\n    url: {base}/nohead/mcp\n    timeout: 1s\n"
    started = start_gateway([], more_backends=backend, log_level="info")
    try:
        yield started
    finally:
        started.stop()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def still_open(stream: socket.socket) -> bool:
    """Nothing to read and no end of stream: the client's GET stream is open."""
    stream.settimeout(0.2)
    try:
        while stream.recv(4096):
            pass  # the head, comments: aigw's, not the backend's
    except TimeoutError:
        return True
    return False


def test_a_stream_head_never_sent_is_given_up_at_the_timeout_and_retried(
    gateway: Gateway, faulty: Process
) -> None:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    reply = httpx2.post(gateway.url, json=INITIALIZE, headers=headers, timeout=20)
    assert reply.status_code == 200, reply.text
    session = reply.headers["mcp-session-id"]
    request = (
        f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n"
        "Accept: text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n"
        f"Mcp-Session-Id: {session}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as stream:
        stream.sendall(request)
        stream.settimeout(5)
        assert stream.recv(4096).startswith(b"HTTP/1.1 200"), gateway.process.log_tail()
        fds: list[int] = []
        deadline = time.monotonic() + 40
        while (dropped := faulty.log().count("DROPPED nohead")) < DROPS:
            assert time.monotonic() < deadline, faulty.log_tail() + gateway.process.log_tail()
            # At most the attempt under way holds a connection to the backend.
            assert faulty.log().count("STREAM nohead") - dropped <= 1, faulty.log_tail()
            if dropped:
                fds.append(open_fds(gateway.process.pid))
            time.sleep(0.1)
        assert still_open(stream), gateway.process.log_tail()
        # The client still gets answers on its session meanwhile.
        ping = httpx2.post(
            gateway.url,
            json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
            headers={**headers, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"},
            timeout=20,
        )
        assert ping.status_code == 200, ping.text
    log = gateway.process.log()
    assert log.count("stream from nohead lost") >= DROPS, gateway.process.log_tail()
    assert "no response within the timeout" in log, gateway.process.log_tail()
    assert max(fds) - min(fds) <= 1, fds  # one socket coming and going, no growth
    assert "Traceback" not in log
