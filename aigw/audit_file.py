"""The audit trail's own file (``audit.file``): JSON lines appended for a SIEM, kept
whole when the file system fails, reopened for log rotation.

Each event of the trail (``audit.NAMESPACE``) is built into one line first and
written with one ``os.write`` on an ``O_APPEND`` descriptor: on the reactor
thread, like every log line of the process, a local write of a short line that
costs microseconds.  On success that write is all the work done.

When a write fails (disk full, EIO, the file system gone) nothing raises into
Twisted's log publisher (which would log a traceback per event and drop the
observer for a while): the event is counted (``errors``,
``aigw_audit_write_errors_total``), a warning names the file and the OS error
at most once per ``WARN_INTERVAL`` with the number of events not written since
the last one, and one info line says when writing works again.  A write that
stopped short (``write(2)`` may write part of a line when the disk fills)
leaves a fragment with no newline; the next line written then starts with a
newline, so the fragment stands alone as one bad line and the next event's
line is whole, never glued to it.

``audit.on_write_error`` says what happens meanwhile.  ``log``: the events that
cannot be written are lost, requests go on.  ``refuse`` (fail closed): from the
first failed write, ``unavailable()`` gives the reason, which the gateway
answers audited requests with (503, ``gateway/refused.py``) and /readyz reports;
the events are held, up to ``MAX_HELD``, and written in order by a probe every
``PROBE_INTERVAL`` until the file takes them, which ends the refusal by itself.

``reopen()`` (SIGUSR1, which logrotate's ``postrotate`` sends, and SIGHUP,
``systemctl reload aigw``) opens the path again, creating it with ``FILE_MODE``
when logrotate moved it away, and closes the old descriptor once the new one is
open, so logrotate's ``create`` works (``debian/aigw.logrotate``); copytruncate is
not needed, and would lose the lines written between its copy and its truncate.
"""

from __future__ import annotations

import math
import os
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import ILogObserver, LogEvent, Logger, LogPublisher, globalLogPublisher
from zope.interface import implementer

from aigw.audit import NAMESPACE, audit_bytes

#: sysexits.h: cannot create an output file.
EX_CANTCREAT = 73
#: The audit file's mode when aigw creates it: the service's group may read it.
FILE_MODE = 0o640
#: At most one warning this often about the audit file failing.
WARN_INTERVAL = 10.0
#: With ``refuse``, how often the held events are tried again.
PROBE_INTERVAL = 1.0
#: With ``refuse``, the events held for the file while it fails; later ones are lost.
MAX_HELD = 1000


def open_descriptor(path: str) -> int:
    """``path`` opened for appending, made with ``FILE_MODE`` (less by the umask) if new;
    an existing file keeps its mode and owner."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)


def _why(error: OSError) -> str:
    return error.strerror or str(error)


@implementer(ILogObserver)
class AuditWriter:
    """Writes the trail's events to one descriptor; see the module docstring."""

    log = Logger()

    def __init__(self, path: str, descriptor: int, clock: Any, refuse: bool) -> None:
        self.path = path
        self.descriptor = descriptor
        self.clock = clock
        self.refuse = refuse
        #: ``os.write`` (tests put a failing one here).
        self.write_bytes = os.write
        #: Events the file could not take when they happened (the metric).
        self.errors = 0
        #: The latest failure while the file fails; None while it is written.
        self.error: OSError | None = None
        # A line stopped short: the next one starts with a newline.
        self._torn = False
        self._held: list[bytes] = []
        self._probe: IDelayedCall | None = None
        # Since the last warning, and since the file began to fail.
        self._unwarned = 0
        self._warned_at = -math.inf
        self._outage_failed = 0
        self._outage_lost = 0

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_namespace") == NAMESPACE:
            self.write(audit_bytes(event))

    def unavailable(self) -> str | None:
        """None while the file is written, else why not (readiness, refusals)."""
        if self.error is None:
            return None
        return f"cannot write the audit file {self.path}: {_why(self.error)}"

    def write(self, line: bytes) -> None:
        if self.error is not None and self.refuse:
            self._unwritten(line)  # after the held ones, which the probe writes in order
            return
        if self._put(line):
            if self.error is not None:
                self._recovered()
        else:
            self._unwritten(line)

    def _put(self, line: bytes) -> bool:
        """One ``os.write`` of one whole line; False (``error`` set) when it fails."""
        data = b"\n" + line if self._torn else line
        try:
            written = self.write_bytes(self.descriptor, data)
        except OSError as error:
            self.error = error
            return False
        if written == len(data):
            self._torn = False
            return True
        self._torn = self._torn or written > 0
        self.error = OSError(0, f"wrote {written} of {len(data)} bytes")
        return False

    def _unwritten(self, line: bytes) -> None:
        """Counted; held for the probe (``refuse``) or lost; a warning when due."""
        self.errors += 1
        self._outage_failed += 1
        self._unwarned += 1
        if self.refuse and len(self._held) < MAX_HELD:
            self._held.append(line)
            if self._probe is None:
                self._probe = self.clock.callLater(PROBE_INTERVAL, self.probe)
        else:
            self._outage_lost += 1
        now = self.clock.seconds()
        if now - self._warned_at < WARN_INTERVAL:
            return
        self.log.warn(
            "cannot write the audit file {path}: {error}; {count} audit event(s) not "
            "written since the last warning, {total} in all; {meanwhile}",
            path=self.path,
            error=_why(self.error) if self.error else "unknown",
            count=self._unwarned,
            total=self.errors,
            meanwhile=(
                f"audited requests are refused until it is written again, its events held "
                f"(up to {MAX_HELD}) (audit.on_write_error: refuse)"
                if self.refuse
                else "those events are lost (audit.on_write_error: log)"
            ),
        )
        self._warned_at = now
        self._unwarned = 0

    def probe(self) -> None:
        """The held events, in order, until one fails (then again later) or all are
        written (then the file is writable again)."""
        self._probe = None
        while self._held:
            if not self._put(self._held[0]):
                self._probe = self.clock.callLater(PROBE_INTERVAL, self.probe)
                return
            del self._held[0]
        if self.error is not None:
            self._recovered()

    def _recovered(self) -> None:
        self.log.info(
            "the audit file {path} is written again; {failed} audit event(s) could not be "
            "written when they happened, {lost} of them lost",
            path=self.path,
            failed=self._outage_failed,
            lost=self._outage_lost,
        )
        self.error = None
        self._outage_failed = self._outage_lost = 0
        self._unwarned = 0
        self._warned_at = -math.inf

    def switch(self, descriptor: int) -> int:
        """Write to ``descriptor`` from now on (reopened); the old one, to close.  A
        torn line is the old file's affair unless both are the same file; held events
        are tried at once on the new one."""
        old, self.descriptor = self.descriptor, descriptor
        try:
            same = os.path.sameopenfile(old, descriptor)
        except OSError:
            same = False
        self._torn = self._torn and same
        if self._held:
            if self._probe is not None:
                self._probe.cancel()
            self.probe()
        return old

    def close(self) -> None:
        """Stopping: held events get one last try; what is left is said, then lost."""
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        held = self._held
        while held and self._put(held[0]):
            del held[0]
        if held:
            self.log.warn(
                "stopping with {count} audit event(s) never written to {path}: {error}",
                count=len(held),
                path=self.path,
                error=_why(self.error) if self.error else "unknown",
            )
            held.clear()
        os.close(self.descriptor)


class AuditFile(Service):
    """The trail appended to its own file while the service runs (the module docstring).

    ``refuse``: ``audit.on_write_error: refuse``.  The file is opened at start, and
    again by ``reopen``."""

    log = Logger()

    def __init__(
        self,
        path: str,
        clock: Any,
        refuse: bool = False,
        publisher: LogPublisher = globalLogPublisher,
    ) -> None:
        self.path = path
        self.clock = clock
        self.refuse = refuse
        self._publisher = publisher
        self.writer: AuditWriter | None = None

    @property
    def errors(self) -> int:
        """Events the file could not take when they happened, since start."""
        return 0 if self.writer is None else self.writer.errors

    def unavailable(self) -> str | None:
        """None while the file is written (or not open), else why not."""
        return None if self.writer is None else self.writer.unavailable()

    def startService(self) -> None:
        try:
            descriptor = open_descriptor(self.path)
        except OSError as error:
            self.log.critical(
                "cannot open the audit file {path}: {error}", path=self.path, error=_why(error)
            )
            raise SystemExit(EX_CANTCREAT) from None
        self.writer = AuditWriter(self.path, descriptor, self.clock, self.refuse)
        self._publisher.addObserver(self.writer)
        super().startService()  # type: ignore[no-untyped-call]

    def reopen(self) -> None:
        """The path opened again (logrotate moved the file away: a new one), the old
        descriptor closed; if it cannot be opened, writing goes on to the old one."""
        if self.writer is None:
            return
        try:
            descriptor = open_descriptor(self.path)
        except OSError as error:
            self.log.error(
                "cannot reopen the audit file {path}: {error}; writing on to the one open",
                path=self.path,
                error=_why(error),
            )
            return
        os.close(self.writer.switch(descriptor))
        self.log.info("reopened the audit file {path}", path=self.path)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self.writer is not None:
            self._publisher.removeObserver(self.writer)
            self.writer.close()
            self.writer = None
