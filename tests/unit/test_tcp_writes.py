"""aigw.tcp_writes: writes to an idle TCP connection leave together at the end of the
reactor iteration, with no writability registration; anything else (something buffered,
a closing connection, a socket that takes only part, an error) keeps Twisted's own
writing, in order."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest
from twisted.internet import tcp
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport

from aigw import tcp_writes
from aigw.tcp_writes import BatchedClient, BatchedServer, batch_writes

Pair = tuple[tcp.Server, socket.socket, MemoryReactorClock]


def _received(peer: socket.socket) -> bytes:
    try:
        return peer.recv(1 << 20)
    except BlockingIOError:
        return b""


@pytest.fixture
def pair() -> Iterator[Pair]:
    """A tcp.Server transport over one end of a socket pair, batched; the other end."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.setblocking(False)
    reactor = MemoryReactorClock()
    transport = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), None, 0, reactor)  # type: ignore[arg-type]
    batch_writes(transport)
    yield transport, peer, reactor
    ours.close()
    peer.close()


def test_writes_leave_together_at_the_end_of_the_iteration(pair: Pair) -> None:
    transport, peer, reactor = pair
    assert type(transport) is BatchedServer
    transport.write(b"HTTP/1.1 200 OK\r\n")
    transport.writeSequence([b"Content-Length: 2\r\n", b"\r\n", b"{}"])
    assert _received(peer) == b""  # not yet: the rest of the iteration runs first
    assert transport not in reactor.getWriters()  # and no writability registration
    reactor.advance(0)
    assert _received(peer) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    assert transport not in reactor.getWriters()
    assert reactor.getDelayedCalls() == []


def test_one_flush_per_iteration_for_every_connection(pair: Pair) -> None:
    transport, peer, reactor = pair
    ours2, peer2 = socket.socketpair()
    ours2.setblocking(False)
    peer2.setblocking(False)
    other = tcp.Server(ours2, Protocol(), ("127.0.0.1", 2), None, 1, reactor)  # type: ignore[arg-type]
    batch_writes(other)
    transport.write(b"one")
    other.write(b"two")
    assert len(reactor.getDelayedCalls()) == 1
    reactor.advance(0)
    assert (_received(peer), _received(peer2)) == (b"one", b"two")
    ours2.close()
    peer2.close()


def test_what_the_socket_does_not_take_goes_twisteds_way(pair: Pair) -> None:
    transport, peer, reactor = pair
    data = bytes(range(256)) * 40_000  # far more than a socket buffer
    transport.write(data)
    reactor.advance(0)
    assert transport in reactor.getWriters()  # the rest waits for writability
    transport.write(b"after")  # queued behind it, in order
    received = b""
    while len(received) < len(data) + 5:
        chunk = _received(peer)
        if not chunk:
            transport.doWrite()
        received += chunk
    assert received == data + b"after"
    assert transport not in reactor.getWriters()


def test_a_streaming_producer_is_paused_by_a_full_queue(pair: Pair) -> None:
    """Writes queued for the end of the iteration count against the buffer as Twisted's
    own do: past ``bufferSize`` the registered streaming producer is paused; without one
    nothing is asked (a write per call saved)."""
    transport, _, _ = pair
    paused: list[bool] = []

    class Producer:
        def pauseProducing(self) -> None:
            paused.append(True)

        def resumeProducing(self) -> None:
            pass

        def stopProducing(self) -> None:
            pass

    transport.write(b"x" * (transport.bufferSize + 1))  # no producer: nothing to pause
    transport.registerProducer(Producer(), True)
    transport.write(b"more")
    assert paused == [True]
    assert transport.producerPaused


def test_an_error_is_left_to_twisted_to_report(pair: Pair) -> None:
    transport, peer, reactor = pair
    peer.close()
    transport.write(b"to nobody")
    reactor.advance(0)
    assert transport in reactor.getWriters()  # the reactor's doWrite meets it and reports it
    assert isinstance(transport.doWrite(), ConnectionLost)


def test_a_connection_closed_before_the_flush_closes_the_ordinary_way(pair: Pair) -> None:
    transport, peer, reactor = pair
    transport.write(b"last words")
    transport.loseConnection()
    assert transport in reactor.getWriters()  # loseConnection's own registration
    reactor.advance(0)  # the flush leaves it to that
    transport.doWrite()
    assert _received(peer) == b"last words"


def test_a_closing_connection_writes_the_ordinary_way(pair: Pair) -> None:
    transport, _peer, reactor = pair
    transport.loseConnection()
    transport.write(b"late")
    assert reactor.getDelayedCalls() == []
    assert transport in reactor.getWriters()


def test_only_exact_tcp_transports_change() -> None:
    other = StringTransport()
    batch_writes(other)
    assert type(other) is StringTransport
    assert issubclass(BatchedClient, tcp.Client)


def test_a_twisted_without_the_parts_relied_on_keeps_its_own_writing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The subclasses use FileDescriptor's private buffers: a Twisted release that
    lacks them gets unbatched writes, not a broken transport."""
    monkeypatch.setattr(tcp_writes, "SUPPORTED", False)
    ours, peer = socket.socketpair()
    try:
        transport = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), None, 0, MemoryReactorClock())  # type: ignore[arg-type]
        batch_writes(transport)
        assert type(transport) is tcp.Server
    finally:
        ours.close()
        peer.close()


def test_this_twisted_has_the_parts_relied_on() -> None:
    assert tcp_writes.SUPPORTED


def test_a_lone_event_sends_a_whole_message_at_once(pair: Pair) -> None:
    """Nothing else in this iteration to batch with: ``send_now`` sends what the
    message's writes queued, in one piece, before the handler's remaining work."""
    transport, peer, reactor = pair
    poller = tcp_writes._CountingPoll(select.epoll())
    reactor._poller = poller  # type: ignore[attr-defined]
    poller.events = 1
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"{}")
    tcp_writes.send_now(transport)
    assert _received(peer) == b"HTTP/1.1 200 OK\r\n\r\n{}"
    transport.write(b"next")  # queued again: the pending flush sends it
    reactor.advance(0)
    assert _received(peer) == b"next"
    assert transport not in reactor.getWriters()
    poller.close()


def test_with_other_events_the_message_waits_for_the_iteration(pair: Pair) -> None:
    transport, peer, reactor = pair
    poller = tcp_writes._CountingPoll(select.epoll())
    reactor._poller = poller  # type: ignore[attr-defined]
    poller.events = 3  # other connections' requests are still to be handled
    transport.write(b"answer")
    tcp_writes.send_now(transport)
    assert _received(peer) == b""
    reactor.advance(0)
    assert _received(peer) == b"answer"
    poller.close()


def test_without_a_counted_poll_send_now_leaves_writes_to_the_iteration(pair: Pair) -> None:
    transport, peer, reactor = pair  # a reactor without an epoll object (a test's)
    transport.write(b"answer")
    tcp_writes.send_now(transport)
    tcp_writes.send_now(StringTransport())  # not batched: nothing to do
    assert _received(peer) == b""
    reactor.advance(0)
    assert _received(peer) == b"answer"


def test_the_epoll_reactor_polls_through_the_counter() -> None:
    """``batch_writes`` wraps an epoll reactor's epoll object once; the reactor's
    registrations and polls go through it and it counts each poll's events."""
    from twisted.internet.epollreactor import EPollReactor

    reactor = EPollReactor()  # type: ignore[no-untyped-call]
    ours, peer = socket.socketpair()
    try:
        transport = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), None, 0, reactor)  # type: ignore[arg-type]
        batch_writes(transport)
        batch_writes(transport)
        poller = reactor._poller
        assert type(poller) is tcp_writes._CountingPoll
        transport.startReading()
        peer.send(b"x")
        reactor.doPoll(0)  # type: ignore[no-untyped-call]
        assert poller.events == 1
        transport.stopReading()
        reactor.doPoll(0)  # type: ignore[no-untyped-call]
        assert poller.events == 0
    finally:
        ours.close()
        peer.close()
        reactor._poller.close()


class _RecordingEpoll:
    """An epoll object's ``poll``, recording the timeouts it was called with."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        self.timeouts.append(timeout)
        return []


def test_on_the_epoll_reactor_the_poll_sends_the_queue_without_a_timer() -> None:
    """The wrapped epoll object sends what was queued before it polls: no ``callLater``
    (its timer and heap operations) per iteration that writes."""
    from twisted.internet.epollreactor import EPollReactor

    reactor = EPollReactor()  # type: ignore[no-untyped-call]
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.setblocking(False)
    try:
        transport = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), None, 0, reactor)  # type: ignore[arg-type]
        batch_writes(transport)
        transport.write(b"HTTP/1.1 200 OK\r\n")
        transport.write(b"\r\n")
        assert reactor.getDelayedCalls() == []
        assert _received(peer) == b""
        reactor.doPoll(0)  # type: ignore[no-untyped-call]
        assert _received(peer) == b"HTTP/1.1 200 OK\r\n\r\n"
        assert transport not in reactor.getWriters()
        transport.write(b"next")
        reactor.doPoll(0)  # type: ignore[no-untyped-call]
        assert _received(peer) == b"next"
    finally:
        ours.close()
        peer.close()
        reactor._poller.close()


def test_a_producer_resumed_by_the_polls_send_makes_that_poll_not_wait(pair: Pair) -> None:
    """A pull producer resumed when its writes left may write or schedule more: the
    poll that sent them then returns at once instead of waiting for the reactor's
    timeout (which did not know of that work)."""
    transport, peer, reactor = pair
    epoll = _RecordingEpoll()
    poller = tcp_writes._CountingPoll(epoll)
    transport._aigw_poller = poller  # type: ignore[attr-defined]
    chunks = [b"two", b"three"]

    class Pull:
        def resumeProducing(self) -> None:
            if chunks:
                transport.write(chunks.pop(0))

        def stopProducing(self) -> None:
            pass

    transport.registerProducer(Pull(), False)  # resumed at once: "two"
    transport.write(b"one")
    assert reactor.getDelayedCalls() == []
    poller.poll(5)
    poller.poll(5)
    poller.poll(5)
    assert epoll.timeouts == [0, 0, 5]  # "three" resumed it once more, with nothing left
    assert _received(peer) == b"twoonethree"


def test_a_paused_streaming_producer_is_resumed_once_the_queue_left(pair: Pair) -> None:
    """A streaming producer that is not paused (an ``HTTPChannel`` on its transport)
    needs nothing once the writes left; one the queue paused is resumed, as
    Twisted's ``doWrite`` does."""
    transport, peer, reactor = pair
    calls: list[str] = []

    class Streaming:
        def pauseProducing(self) -> None:
            calls.append("pause")

        def resumeProducing(self) -> None:
            calls.append("resume")

        def stopProducing(self) -> None:
            pass

    transport.registerProducer(Streaming(), True)
    transport.write(b"small")
    reactor.advance(0)
    assert calls == []
    assert _received(peer) == b"small"
    transport.write(b"x" * (transport.bufferSize + 1))
    assert calls == ["pause"]
    reactor.advance(0)
    received = b""
    while len(received) < transport.bufferSize + 1:
        chunk = _received(peer)
        if not chunk:
            transport.doWrite()
        received += chunk
    assert calls == ["pause", "resume"]
    assert not transport.producerPaused
