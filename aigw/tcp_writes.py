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
buffered is queued, and everything queued is sent once the iteration's events
and timers have run, right before the reactor polls again: the same batches as
Twisted's, no ``epoll_ctl``, no wait for a poll.  On the epoll reactor the
queue is sent by the reactor's epoll object itself, wrapped (``_CountingPoll``),
as its ``poll`` is called; on any other reactor by one ``callLater(0)``, which
costs a timer and its heap operations per iteration that writes.  Whatever the
socket does not take then (a full send buffer, an error) is handed to Twisted's
own writing (``startWriting``), so back-pressure, producers and the reporting
of a lost connection are unchanged.  A connection that is closing, half-closed,
has TLS started on it or already waits for writability writes the ordinary way.

When the iteration has nothing to batch with (its poll reported one event: a
lone call, as at concurrency 1), waiting for its end only delays the send behind
whatever the handler still does after writing (the access log, the request's
clean-up, the coroutines returning).  ``send_now``, called where a whole message
has been written (an answer finished, a request to a backend), sends it at once
in that case; the wrapped epoll object counts its last poll's events.

Twisted builds a connection's transport inside the reactor (``Port.doRead``,
``Connector._makeTransport``) with no factory hook, so ``batch_writes`` changes
the class of an exact ``tcp.Server`` or ``tcp.Client`` to a subclass that only
adds what is below; any other transport (TLS, UNIX, a test's fake) is left as
it is.
"""

from __future__ import annotations

import select
from collections.abc import Iterable
from typing import Any

from twisted.internet import tcp

#: Per reactor without a ``_CountingPoll``: the transports with writes queued for the
#: ``callLater(0)`` at the end of this iteration.
_queued: dict[Any, list[Any]] = {}


def _flush(reactor: Any) -> None:
    """Send what each queued transport holds; what is left goes Twisted's way."""
    _send_all(_queued.pop(reactor, []))


def _send_all(transports: list[Any]) -> bool:
    """Send what each of ``transports`` still has queued; True when that may have run
    a producer's code (which may have written or scheduled more)."""
    ran = False
    for transport in transports:
        if transport._aigw_queued:  # not sent by send_now meanwhile
            ran = _send(transport) or ran
    return ran


def _send(transport: Any) -> bool:
    """Send ``transport``'s queued writes; True when a producer may have been resumed.

    Without a producer to resume (none, or a streaming one not paused, as an
    ``HTTPChannel``), what is queued goes to ``writeSomeData`` (the socket's
    ``send``) directly: ``doWrite`` would also unregister the socket for writing,
    which it never was (four calls per write).  What the socket does not take, and
    an error, are left in ``dataBuffer`` as ``doWrite`` leaves them, for Twisted's
    writing to send or report."""
    transport._aigw_queued = False
    if not transport.connected or transport.disconnecting or transport._writeDisconnecting:
        return False  # gone, or loseConnection registered it for writing already
    producer = transport.producer
    if not transport.dataBuffer and (
        producer is None or (transport.streamingProducer and not transport.producerPaused)
    ):  # nothing for doWrite to resume once all is sent
        pieces = transport._tempDataBuffer
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        transport._tempDataBuffer = []
        transport._tempDataLen = 0
        sent = transport.writeSomeData(data)
        if sent == len(data):
            return False
        transport.dataBuffer = data
        transport.offset = sent if type(sent) is int and sent > 0 else 0
        transport.startWriting()  # the rest, or the error met again and reported
        return False
    failed = transport.doWrite()  # sends; resumes a producer it paused; None when fine
    if failed is not None or transport._tempDataLen or transport.dataBuffer:
        transport.startWriting()  # the reactor's doWrite meets an error again and reports it
    return True


def send_now(transport: object) -> None:
    """Send what ``transport`` queued at once when this iteration's poll reported no
    other event (nothing to batch it with); else leave it for the end of the iteration.
    Called once a whole message is written, so it leaves in one piece."""
    if getattr(transport, "_aigw_queued", False):
        poller = getattr(transport.reactor, "_poller", None)  # type: ignore[attr-defined]
        if type(poller) is _CountingPoll and poller.events <= 1:
            _send(transport)


class _CountingPoll:
    """The epoll reactor's epoll object, remembering how many events its last poll
    returned, and sending the writes queued since it was last called (``queue``)
    before it polls: the reactor calls ``poll`` once an iteration's events and
    timers have run.  ``EPollReactor`` calls ``poll``, ``register``, ``modify`` and
    ``unregister`` on it; anything else is passed through."""

    __slots__ = ("_epoll", "events", "queue")

    def __init__(self, epoll: Any) -> None:
        self._epoll = epoll
        self.events = 0
        #: The transports with writes queued for the end of this iteration.
        self.queue: list[Any] = []

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        if self.queue:
            transports = self.queue
            self.queue = []
            ran = False
            for transport in transports:  # _send_all, inline: a call per iteration
                if transport._aigw_queued:  # not sent by send_now meanwhile
                    ran = _send(transport) or ran
            if ran or self.queue:
                # A producer ran: what it wrote or scheduled is for the next
                # iteration, which must not wait for the reactor's timeout.
                timeout = 0
        ready: list[tuple[int, int]] = self._epoll.poll(timeout, maxevents)
        self.events = len(ready)
        return ready

    def register(self, fd: int, eventmask: int) -> None:
        self._epoll.register(fd, eventmask)

    def modify(self, fd: int, eventmask: int) -> None:
        self._epoll.modify(fd, eventmask)

    def unregister(self, fd: int) -> None:
        self._epoll.unregister(fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._epoll, name)


def _count_polls(reactor: Any) -> _CountingPoll | None:
    """Wrap an epoll reactor's epoll object in a ``_CountingPoll``, once; the wrapper,
    or None for any other reactor."""
    poller = getattr(reactor, "_poller", None)
    if poller is not None and type(poller) is getattr(select, "epoll", None):
        poller = reactor._poller = _CountingPoll(poller)
    return poller if type(poller) is _CountingPoll else None


class _BatchedWrites:
    """``write``/``writeSequence`` for a ``tcp.Connection`` subclass: see the module."""

    _aigw_queued = False
    #: The reactor's ``_CountingPoll``, which sends the queue before it polls; None:
    #: a ``callLater(0)`` does.
    _aigw_poller: _CountingPoll | None = None

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
            poller = self._aigw_poller
            if poller is not None:
                poller.queue.append(self)
            else:
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
        # What _maybePauseProducer looks at (the queue is all there is buffered): the
        # call only when it would pause the producer.
        if self.producer is not None and self._tempDataLen > self.bufferSize:
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
    "producer",
    "streamingProducer",
    "producerPaused",
    "bufferSize",
    "_writeDisconnecting",
    "_writeDisconnected",
    "dataBuffer",
    "_maybePauseProducer",
    "doWrite",
    "writeSomeData",
    "offset",
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
        transport._aigw_poller = _count_polls(transport.reactor)  # type: ignore[attr-defined]
