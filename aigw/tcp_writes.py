"""TCP transports whose writes leave at the end of the reactor iteration, without epoll.

Twisted's ``FileDescriptor.write`` buffers and registers the socket for
writability (``epoll_ctl``); the next ``epoll_wait`` reports it writable, the
reactor sends, and unregisters it (``epoll_ctl`` again).  A proxied call writes
twice (the request to the backend, the answer to the client): two system calls
to register, two to unregister, and each write waits for the next
``epoll_wait`` and a dispatch through the reactor's logging context
(docs/performance.md, "A leaner, faster process").

Sending at once instead (in ``write``) costs more under load: each call's
answer then leaves before the other connections' requests read in the same
iteration are handled, and the batching the event loop gives at concurrency 32
is lost (measured: +15% CPU per call).  So a write to a connection with nothing
buffered is queued, and everything queued is sent by one ``callLater(0)`` the
reactor runs right after the current iteration's events, before it polls again:
the same batches as Twisted's, no ``epoll_ctl``, no wait for a poll.  Whatever
the socket does not take then (a full send buffer, an error) is handed to
Twisted's own writing (``startWriting``), so back-pressure, producers and the
reporting of a lost connection are unchanged.  A connection that is closing,
half-closed, has TLS started on it or already waits for writability writes the
ordinary way.

Twisted builds a connection's transport inside the reactor (``Port.doRead``,
``Connector._makeTransport``) with no factory hook, so ``batch_writes`` changes
the class of an exact ``tcp.Server`` or ``tcp.Client`` to a subclass that only
adds what is below; any other transport (TLS, UNIX, a test's fake) is left as
it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet import tcp

#: Per reactor: the transports with writes queued for the end of this iteration.
_queued: dict[Any, list[Any]] = {}


def _flush(reactor: Any) -> None:
    """Send what each queued transport holds; what is left goes Twisted's way."""
    transports = _queued.pop(reactor, [])
    for transport in transports:
        transport._aigw_queued = False
        if not transport.connected or transport.disconnecting or transport._writeDisconnecting:
            continue  # gone, or loseConnection registered it for writing already
        failed = transport.doWrite()  # sends; resumes a producer it paused; None when fine
        if failed is not None or transport._tempDataLen or transport.dataBuffer:
            transport.startWriting()  # the reactor's doWrite meets an error again and reports it


class _BatchedWrites:
    """``write``/``writeSequence`` for a ``tcp.Connection`` subclass: see the module."""

    _aigw_queued = False

    def write(self: Any, data: bytes) -> None:
        if not self._aigw_queued:
            if not (
                data
                and type(data) is bytes
                and self.connected
                and not self.disconnecting
                and not self._writeDisconnected
                and not self._writeDisconnecting
                and not self.TLS
                and not self._tempDataLen
                and not self.dataBuffer
            ):
                super().write(data)  # type: ignore[misc]
                return
            self._aigw_queued = True
            queue = _queued.get(self.reactor)
            if queue is None:
                queue = _queued[self.reactor] = []
                self.reactor.callLater(0, _flush, self.reactor)
            queue.append(self)
        elif not self.connected or self._writeDisconnected or not data:
            return
        # FileDescriptor.write without startWriting: _flush sends it.
        self._tempDataBuffer.append(data)
        self._tempDataLen += len(data)
        self._maybePauseProducer()

    def writeSequence(self: Any, iovec: Iterable[bytes]) -> None:
        self.write(b"".join(iovec))


class BatchedServer(_BatchedWrites, tcp.Server):
    """An accepted TCP connection whose writes leave at the end of the iteration."""


class BatchedClient(_BatchedWrites, tcp.Client):
    """An outgoing TCP connection whose writes leave at the end of the iteration."""


_BATCHED: dict[type, type] = {tcp.Server: BatchedServer, tcp.Client: BatchedClient}

#: The parts of Twisted's ``FileDescriptor`` the subclasses rely on: private, so a
#: Twisted release without them gets Twisted's own writing, unbatched, not a break.
_RELIED_ON = (
    "_writeDisconnecting",
    "_writeDisconnected",
    "dataBuffer",
    "_maybePauseProducer",
    "doWrite",
    "startWriting",
    "TLS",
)
#: Set in ``FileDescriptor.__init__``, so looked for on each transport.
_RELIED_ON_PER_TRANSPORT = ("_tempDataBuffer", "_tempDataLen")
SUPPORTED = all(hasattr(tcp.Connection, name) for name in _RELIED_ON)


def batch_writes(transport: object) -> None:
    """Make ``transport`` send its writes at the end of the reactor iteration (called
    from a protocol's ``connectionMade``)."""
    batched = _BATCHED.get(type(transport))
    if (
        batched is not None
        and SUPPORTED
        and all(hasattr(transport, name) for name in _RELIED_ON_PER_TRANSPORT)
    ):
        transport.__class__ = batched
