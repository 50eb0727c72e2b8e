"""``backends[].connect_timeout``, end to end: a backend whose address never completes
a TCP handshake.

On 127.0.0.1 such an address is a listening socket with a backlog of 0 whose accept
queue is full of connections no one accepts: Linux then drops further SYNs
(``tcp_abort_on_overflow`` 0, the default), so a connect waits until its own timeout.
The fixture checks that with a connect of its own before the test relies on it.
Client: a raw 2025-11-25 ``initialize``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import anyio
import httpx2
import pytest

from .aigw import INITIALIZE, MCP_HEADERS, Gateway, start_gateway
from .harness.processes import until_async

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def black_hole() -> Iterator[int]:
    """The port of a listener whose handshakes never complete."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    try:
        for _ in range(4):  # more than the queue of 1 takes; never accepted
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            held.append(filler)
        probe = socket.socket()
        probe.settimeout(1)
        with probe, pytest.raises(TimeoutError):
            probe.connect(("127.0.0.1", port))
        yield port
    finally:
        for filler in held:
            filler.close()
        listener.close()


@pytest.fixture
def gateway(black_hole: int) -> Iterator[Gateway]:
    """Two backends at the black hole: ``quick`` gives up connecting after 1 s, ``held``
    after the default 10 s."""
    hole = f"http://127.0.0.1:{black_hole}/mcp"
    started = start_gateway([("quick", hole, "connect_timeout: 1s"), ("held", hole)])
    try:
        yield started
    finally:
        started.stop()


def failed(gateway: Gateway, backend: str) -> bool:
    """aigw logged ``backend``'s connection as timed out in its handshake (Twisted's
    endpoint timeout, ``aigw/tls.py`` ``tcp_endpoint``)."""
    line = f"upstream {backend}: connection failed: User timeout caused connection failure"
    return line in gateway.process.log()


async def test_connect_timeout_gives_up_a_handshake_that_never_completes(
    gateway: Gateway,
) -> None:
    """An ``initialize`` opens a session with both backends at once: ``quick``'s connect
    fails by its own ``connect_timeout`` while ``held``'s, 9 s longer, still waits."""
    async with anyio.create_task_group() as group:

        async def initialize() -> None:
            async with httpx2.AsyncClient(timeout=30) as http:
                await http.post(gateway.url, json=INITIALIZE, headers=MCP_HEADERS)

        group.start_soon(initialize)
        assert await until_async(lambda: failed(gateway, "quick"), seconds=8)
        assert not failed(gateway, "held")
        group.cancel_scope.cancel()
