"""A loopback TCP relay that can cut every connection through it at once: a network
blip between a client and the load balancer, while the servers and the session live on.

asyncio, for the e2e tests that run on anyio's asyncio backend (the SDK clients').
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType

#: Bytes read at once from either side; each write is drained before the next read,
#: so a connection buffers at most about this much in the relay.
CHUNK = 65536
#: Connections open at once; more are reset on arrival (a test opens a handful).
MAX_CONNECTIONS = 64
#: SO_LINGER on, timeout 0: close() sends a RST, not a FIN (socket(7)).
RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a RST, what a broken path's middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
    writer.transport.abort()


class Relay:
    """Listens on a free 127.0.0.1 port and relays each connection to ``target_port``;
    ``cut()`` resets all the open ones, both sides.  An async context manager: closed
    (and every connection reset) on exit."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepted = 0
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the relay is not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()
        # Each connection's task ends with its reset sockets, before the loop does.
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> int:
        """Reset every open connection, client's side and target's side: how many."""
        pairs = list(self._open)
        self._open.clear()
        for client, target in pairs:
            reset(client)
            reset(target)
        return len(pairs)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._open) >= MAX_CONNECTIONS:
            reset(writer)
            return
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            target_reader, target_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            reset(writer)
            return
        pair = (writer, target_writer)
        self._open.add(pair)
        try:
            await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))
        finally:
            if pair in self._open:  # ended by a side, not cut: close both
                self._open.discard(pair)
                writer.close()
                target_writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until the source ends (then half-close the sink) or either side fails."""
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (OSError, RuntimeError):
        # A reset side (ours by cut(), or the peer's): the other pipe ends as well.
        sink.transport.abort()
