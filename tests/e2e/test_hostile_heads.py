"""Request heads over a real socket to a real aigw: ordinary heads, whole in one write or
cut across writes, are served (the one-pass path of aigw/web/head.py and Twisted's line
path); heads that could smuggle a request (RFC 9112 §6.1, §6.3) or break the field
syntax (RFC 9110 §5) are answered 400 and the connection closed, and what followed them
on the connection is never read as a request."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator

import pytest

from .aigw import INITIALIZE, Gateway, start_gateway
from .harness.upstreams import start_twisted_upstream

pytestmark = [pytest.mark.timeout(120)]

#: A request any smuggled head would carry behind it; never to be answered.
SMUGGLED = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    if os.environ.get("AIGW_E2E_SKIP"):
        pytest.skip("AIGW_E2E_SKIP is set")
    flood = start_twisted_upstream("flood")
    try:
        assert flood.ready_match is not None
        started = start_gateway([("flood", f"{flood.ready_match.group(1)}/quiet/mcp")])
        try:
            yield started
        finally:
            started.stop()
    finally:
        flood.stop()


def exchange(gateway: Gateway, *writes: bytes) -> bytes:
    """Send ``writes`` one after the other on one connection (a pause between, so each
    is its own read), then read until aigw closes it or goes quiet."""
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for index, data in enumerate(writes):
            if index:
                time.sleep(0.05)
            sock.sendall(data)
        answer = b""
        sock.settimeout(2)
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return answer
            if not chunk:
                return answer
            answer += chunk
    finally:
        sock.close()


def statuses(answer: bytes) -> list[bytes]:
    """The status of every answer on the connection, in order."""
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)


def initialize_request() -> bytes:
    body = json.dumps(INITIALIZE).encode()
    return (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n"
        % len(body)
        + body
    )


def test_ordinary_heads_are_served_whole_or_cut_anywhere(gateway: Gateway) -> None:
    """An MCP initialize and a GET behind it, in one write, then cut in the head, in the
    body and between the two.

    expected: both answered 200, in order, on the one connection, every time
    """
    data = initialize_request() + SMUGGLED.replace(b"readyz", b"healthz")
    head_end = data.index(b"\r\n\r\n")
    for cuts in ([], [10], [head_end + 2], [head_end + 6], [head_end - 3, len(data) - 5]):
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        answer = exchange(gateway, *pieces)
        assert statuses(answer) == [b"200", b"200"], (cuts, answer)
        assert b"mcp-session-id" in answer.lower()


@pytest.mark.parametrize(
    "head",
    [
        # RFC 9112 §6.1: Transfer-Encoding and Content-Length together.
        b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        # RFC 9112 §6.3: two differing Content-Lengths, or one that is not digits.
        b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\n",
        b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n",
        b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\n",
        # A chunk size that is not hex digits.
        b"POST /mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-4\r\n",
        # A coding Twisted does not decode.
        b"POST /mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        # RFC 9110 §5.1, §5.5: no space before the colon, no NUL or CR in a value.
        b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length : 4\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",
    ],
)
def test_hostile_heads_are_400_and_nothing_behind_them_is_read(
    gateway: Gateway, head: bytes
) -> None:
    """A head that would let the body be read two ways, or breaks the field syntax, with
    a request behind it in the same write (and, once more, in a write of its own).

    expected: one answer, 400 with aigw's JSON error, then the connection closed
    """
    for writes in ([head + b"XXXX" + SMUGGLED], [head, b"XXXX" + SMUGGLED]):
        answer = exchange(gateway, *writes)
        assert statuses(answer) == [b"400"], answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "invalid_request"
