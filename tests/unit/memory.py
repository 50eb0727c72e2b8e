"""TCP between the protocols of one test, in memory, on a fake clock.

Code under test gets ``MemoryNetwork.reactor`` (a ``MemoryReactorClock``) and
connects as it always does: endpoints call ``connectTCP``, which only records
the attempt.  :meth:`MemoryNetwork.run` then plays the network: it completes
each attempt to an address something serves (``serve``, or ``listenTCP`` on the
same reactor, as a ``GatewayService`` listener does) with a pair of ``iosim``
transports, moves bytes both ways and runs the calls that are due.  Time moves
only when nothing else can happen, straight to the next delayed call, so a
5-second timeout takes no wall time and every run is the same.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump, connect

T = TypeVar("T")

#: Where the fake clock starts: a fixed instant, so tokens and sealed ids made
#: from ``reactor.seconds()`` are the same on every run.
EPOCH = 1_800_000_000.0


class Stuck(AssertionError):
    """What a test awaits can never happen: nothing moves and no call is due in time."""


class MemoryNetwork:
    """Loopback TCP in memory; :meth:`run` drives it until a Deferred fires."""

    #: Rounds of :meth:`run` before it gives up (each moves bytes or time).
    MAX_STEPS = 100_000

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(EPOCH)
        self._servers: dict[tuple[str, int], IProtocolFactory] = {}
        self._pumps: list[IOPump] = []
        self._settling: list[Deferred[None]] = []
        self._server_ports = itertools.count(40000)
        self._client_ports = itertools.count(50000)

    def serve(self, factory: IProtocolFactory, host: str = "127.0.0.1") -> int:
        """Accept connections to ``host`` on a new port with ``factory``; the port."""
        port = next(self._server_ports)
        factory.doStart()
        self._servers[(host, port)] = factory
        return port

    def settle(self) -> Deferred[None]:
        """Fires once every byte in flight has arrived and every call due now has run:
        what a test waited for with a short real-time sleep, without the guess."""
        settled: Deferred[None] = Deferred()
        self._settling.append(settled)
        return settled

    def sleep(self, seconds: float) -> Deferred[None]:
        """Fires once ``seconds`` of fake time have passed; :meth:`run` moves the clock
        there through every call that falls due on the way."""
        slept: Deferred[None] = Deferred()
        clock: IReactorTime = self.reactor
        clock.callLater(seconds, slept.callback, None)
        return slept

    def run(self, work: Deferred[T] | Coroutine[Any, Any, T], within: float = 600.0) -> T:
        """Play the network until ``work`` completes; its result (or its exception).

        Each round completes new connections, moves bytes one hop on every
        connection and runs the calls due now.  When a round moves nothing,
        :meth:`settle` waiters fire; when there are none, the clock jumps to the
        next delayed call, at most ``within`` seconds past the start.
        """
        what = repr(work)
        done: Deferred[T] = ensureDeferred(work)
        deadline = self.reactor.seconds() + within
        why = f"still busy after {self.MAX_STEPS} rounds"
        for _ in range(self.MAX_STEPS):
            if done.called:
                break
            if self._step():
                continue
            if self._settling:
                settled, self._settling = self._settling, []
                for waiter in settled:
                    waiter.callback(None)
                continue
            calls = self.reactor.getDelayedCalls()
            due = min((call.getTime() for call in calls), default=None)
            if due is None or due > deadline:
                why = "nothing left to happen" if due is None else f"not within {within} s"
                break
            self.reactor.advance(due - self.reactor.seconds())
        outcome: list[T | Failure] = []
        done.addBoth(outcome.append)
        if not outcome:
            done.cancel()
            raise Stuck(f"{what} never completed: {why}")
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result  # type: ignore[return-value]

    def open_connections(self, port: int | None = None) -> int:
        """Connections neither end has closed yet (to ``port`` only, when given)."""
        return sum(
            1
            for pump in self._pumps
            if not (pump.clientIO.disconnected or pump.serverIO.disconnected)
            and (port is None or pump.serverIO.getHost().port == port)
        )

    def links(self) -> list[IOPump]:
        """The connections open now, each an ``IOPump`` (its ``clientIO`` and ``serverIO``
        are the two ends' transports, their ``protocol`` the two ends)."""
        return [
            pump
            for pump in self._pumps
            if not (pump.clientIO.disconnected or pump.serverIO.disconnected)
        ]

    def _step(self) -> bool:
        """One round; whether anything happened."""
        busy = self._connect()
        for pump in list(self._pumps):
            if pump.pump(advanceClock=False):
                busy = True
            elif pump.clientIO.disconnected and pump.serverIO.disconnected:
                self._pumps.remove(pump)
        now = self.reactor.seconds()
        if any(call.getTime() <= now for call in self.reactor.getDelayedCalls()):
            self.reactor.advance(0)
            busy = True
        return busy

    def _server(self, host: str, port: int) -> IProtocolFactory | None:
        if (host, port) in self._servers:
            return self._servers[(host, port)]
        for listening, factory, _backlog, interface in self.reactor.tcpServers:
            if listening == port and interface in ("", "0.0.0.0", host):  # noqa: S104
                return factory  # type: ignore[no-any-return]
        return None

    def _connect(self) -> bool:
        """Complete (or refuse) every connection attempt made since the last round."""
        attempted = bool(self.reactor.tcpClients)
        while self.reactor.tcpClients:
            host, port, factory, _timeout, _bind = self.reactor.tcpClients.pop(0)
            connector = self.reactor.connectors.pop(0)
            if connector.stoppedConnecting:
                continue
            server = self._server(host, port)
            server_address = IPv4Address("TCP", host, port)
            client_address = IPv4Address("TCP", "127.0.0.1", next(self._client_ports))
            accepted = server.buildProtocol(client_address) if server is not None else None
            if accepted is None:
                factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
                continue
            connecting = factory.buildProtocol(server_address)
            self._pumps.append(
                connect(
                    accepted,
                    FakeTransport(accepted, True, server_address, client_address),
                    connecting,
                    FakeTransport(connecting, False, client_address, server_address),
                    greet=False,
                    clock=self.reactor,
                )
            )
        return attempted


def run(test: Callable[[Any], Coroutine[Any, Any, None]]) -> Callable[[Any], None]:
    """An async test method, driven to its end on its test case's ``network``."""

    @functools.wraps(test)
    def driven(self: Any) -> None:
        self.network.run(test(self))

    return driven
