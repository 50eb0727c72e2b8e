"""Telling systemd how the daemon is doing: the sd_notify(3) protocol, in Python.

The protocol is one datagram per message, newline-separated ``NAME=value``
assignments, sent to the ``AF_UNIX`` socket named by ``NOTIFY_SOCKET``.  That is
a few lines, so no library: a plain non-blocking ``socket.socket`` rather than
Twisted's ``connectUNIXDatagram``, because a datagram to a local socket is
queued or refused at once (it never waits on a peer), it works before the
reactor runs and from inside ``stopService``, and an unconnected socket
re-resolves the address on every send, so systemd re-executing itself
(``systemctl daemon-reexec``, which re-binds the socket) does not cut us off.

* ``Notifier``: the messages (READY, RELOADING, STOPPING, STATUS, WATCHDOG).
* ``WatchdogService``: ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` while the
  reactor turns (sd_watchdog_enabled(3)), so a wedged event loop gets restarted.
* ``SystemdService``: ``READY=1`` once the daemon's readiness checks pass,
  ``STATUS=`` lines on the way, the watchdog as a child.

Without ``NOTIFY_SOCKET`` (not started by systemd, or ``Type=simple``) all of
it is a no-op.  This module is a shared piece: it imports none of aigw's layers.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

#: The daemon's readiness: (all checks pass, {check name: "ok" or why not}).
Report = Callable[[], tuple[bool, Mapping[str, str]]]


def notify_address(value: str) -> str | None:
    """The socket address named by ``NOTIFY_SOCKET``, or None when there is none we can use.

    sd_notify(3): an absolute path names a socket in the file system, a leading
    ``@`` one in Linux's abstract namespace (the ``@`` stands for a NUL byte).
    Other forms (``vsock:``, systemd 254+) are not used for services on the host.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between keep-alives: half ``WATCHDOG_USEC``, or None when no watchdog is asked.

    sd_watchdog_enabled(3): the watchdog is ours when ``WATCHDOG_USEC`` is a
    positive number of microseconds and ``WATCHDOG_PID``, if set, is our pid
    (a child that inherited the environment must not ping for its parent);
    sending at half the timeout is what it recommends.
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    if "WATCHDOG_PID" in environ:
        try:
            if int(environ["WATCHDOG_PID"]) != pid:
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends sd_notify(3) messages to ``NOTIFY_SOCKET``; does nothing without one.

    A failed send (the socket gone, its queue full) is logged once and never
    raised: the daemon must keep serving even if the service manager went away.
    """

    log = Logger()

    def __init__(
        self, environ: Mapping[str, str], monotonic_usec: Callable[[], int] = _monotonic_usec
    ) -> None:
        self.socket_name = environ.get("NOTIFY_SOCKET", "")
        self.address = notify_address(self.socket_name)
        self._monotonic_usec = monotonic_usec
        self._socket: socket.socket | None = None
        self._failed = False
        if self.socket_name and self.address is None:
            self.log.warn(
                "NOTIFY_SOCKET={socket!r} is not a socket path nor an abstract @name: "
                "systemd will not hear from aigw",
                socket=self.socket_name,
            )

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str) -> None:
        """Start-up (or a reload) is complete: systemd.service(5) ``Type=notify`` waits for this."""
        self.send("READY=1", f"STATUS={_one_line(status)}")

    def reloading(self, status: str) -> None:
        """A reload begins; ``ready()`` must follow when it is done (sd_notify(3)).

        ``MONOTONIC_USEC=`` is the time it began: systemd 253+ needs it with
        RELOADING=1 to tell this reload from an older one (``Type=notify-reload``);
        older managers ignore it.
        """
        self.send(
            "RELOADING=1",
            f"MONOTONIC_USEC={self._monotonic_usec()}",
            f"STATUS={_one_line(status)}",
        )

    def stopping(self, status: str) -> None:
        """Shutdown has begun: systemd shows the unit as deactivating from now on."""
        self.send("STOPPING=1", f"STATUS={_one_line(status)}")

    def status(self, text: str) -> None:
        """A free-form line ``systemctl status`` shows."""
        self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> None:
        """The keep-alive that resets the service's ``WatchdogSec=`` timer."""
        self.send("WATCHDOG=1")

    def send(self, *assignments: str) -> None:
        """One datagram with these ``NAME=value`` lines (sd_notify(3) state string)."""
        if self.address is None:
            return
        message = "\n".join(assignments).encode("utf-8")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto(message, self.address)
        except OSError as error:
            if not self._failed:
                self._failed = True
                self.log.warn(
                    "cannot notify systemd at {socket}: {error} (further failures not logged)",
                    socket=self.socket_name,
                    error=error,
                )

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _one_line(text: str) -> str:
    """A value ends at the newline (sd_notify(3)): keep a status on its line."""
    return " ".join(text.splitlines())


class WatchdogService(Service):
    """``WATCHDOG=1`` every half ``WATCHDOG_USEC``, from the reactor's own loop.

    The keep-alive is a timed call, so it stops when the reactor stops turning
    (a blocking call, a busy loop): systemd then kills and restarts the daemon
    (``WatchdogSec=`` with ``Restart=on-failure``, systemd.service(5)).
    """

    def __init__(
        self,
        notifier: Notifier,
        reactor: IReactorTime,
        environ: Mapping[str, str],
        pid: int | None = None,
    ) -> None:
        self.notifier = notifier
        self.interval = watchdog_interval(environ, os.getpid() if pid is None else pid)
        self._loop = LoopingCall(notifier.watchdog)
        self._loop.clock = reactor

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self.interval is not None and self.notifier.enabled:
            # The first keep-alive half a period from now, once the reactor runs.
            self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        if self._loop.running:
            self._loop.stop()
        super().stopService()  # type: ignore[no-untyped-call]


class SystemdService(MultiService):
    """What systemd hears over the daemon's life: starting, waiting for..., ready, stopping.

    READY=1 is sent once, when every readiness check passes (listeners up, the
    issuer's keys loaded), checked every ``poll_interval`` seconds from the first
    reactor turn: the same checks ``/readyz`` reports, so systemd and a load
    balancer agree.  Until then ``STATUS=`` says what is awaited.
    """

    log = Logger()

    def __init__(
        self,
        notifier: Notifier,
        reactor: IReactorTime,
        report: Report,
        serving: str,
        environ: Mapping[str, str],
        pid: int | None = None,
        poll_interval: float = 0.1,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.notifier = notifier
        self.serving = serving
        self.announced = False
        self._reactor = reactor
        self._report = report
        self._poll_interval = poll_interval
        self._waiting: str | None = None
        self._stopping = False
        self._pending: IDelayedCall | None = None
        self._poll = LoopingCall(self._check)
        self._poll.clock = reactor
        self.watchdog = WatchdogService(notifier, reactor, environ, pid)
        self.watchdog.setServiceParent(self)  # type: ignore[no-untyped-call]

    def startService(self) -> None:
        self.notifier.status("starting")
        super().startService()  # type: ignore[no-untyped-call]
        if self.notifier.enabled and not self.announced:
            self._pending = self._reactor.callLater(0, self._start_polling)

    def _start_polling(self) -> None:
        self._pending = None
        self._poll.start(self._poll_interval).addErrback(
            lambda failure: self.log.failure("readiness check failed", failure)
        )

    def _check(self) -> None:
        ready, checks = self._report()
        if ready:
            self._poll.stop()
            self.announced = True
            self.notifier.ready(self.serving)
            return
        waiting = "waiting: " + "; ".join(why for why in checks.values() if why != "ok")
        if waiting != self._waiting:
            self._waiting = waiting
            self.notifier.status(waiting)

    def reloading(self, status: str = "reloading") -> None:
        """A reload begins (SIGHUP, ``systemctl reload``): RELOADING=1, unless stopping."""
        if not self._stopping:
            self.notifier.reloading(status)

    def reloaded(self) -> None:
        """The reload is done: READY=1 again, unless start-up is not over (its READY=1
        is still to come) or shutdown has begun."""
        if self.announced and not self._stopping:
            self.notifier.ready(self.serving)

    def stopping(self, status: str = "stopping: draining in-flight requests") -> None:
        """Shutdown begins: STOPPING=1, once."""
        if not self._stopping:
            self._stopping = True
            self.notifier.stopping(status)

    def stopService(self) -> Deferred[None]:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        if self._poll.running:
            self._poll.stop()
        stopped: Deferred[None] = super().stopService()  # type: ignore[no-untyped-call]
        return stopped
