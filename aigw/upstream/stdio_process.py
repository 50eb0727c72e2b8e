"""One MCP server as a child process: JSON-RPC messages, one per line, on its stdin and stdout.

MCP basic/transports "stdio": the client launches the server as a subprocess; each
message is one line of UTF-8 JSON with no embedded newline; the server may log to
stderr and writes nothing but messages to stdout; the client shuts it down by
closing its stdin, then SIGTERM, then SIGKILL.  This module hears and speaks that
wire; what the messages mean is ``stdio.py``'s business.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from aigw.protocol import jsonrpc

#: The longest message a child may write on stdout (as ``client.MAX_JSON_REPLY_BYTES``).
MAX_LINE_BYTES = 16 * 1024 * 1024
#: How much of one stderr line is kept for the log; the rest is dropped.
MAX_LOG_LINE = 2048
#: Each step of a stop (stdin closed, SIGTERM) waits this long before the next.
STOP_GRACE_SECONDS = 2.0


class LineTooLong(Exception):
    """A line went past its bound before its newline came."""


class Lines:
    """Splits a byte stream at newlines, bounded: a longer line is ``LineTooLong``, or,
    with ``truncate``, cut at the bound and the rest of it dropped."""

    def __init__(self, limit: int, truncate: bool = False) -> None:
        self._limit = limit
        self._truncate = truncate
        self._parts: list[bytes] = []
        self._size = 0
        self._dropping = False

    def feed(self, data: bytes) -> list[bytes]:
        *complete, rest = data.split(b"\n")
        lines: list[bytes] = []
        for part in complete:
            if not self._dropping:
                self._add(part, lines)
                if not self._dropping:
                    lines.append(b"".join(self._parts))
            self._parts, self._size, self._dropping = [], 0, False
        if not self._dropping:
            self._add(rest, lines)
        return lines

    def _add(self, part: bytes, lines: list[bytes]) -> None:
        if self._size + len(part) <= self._limit:
            self._parts.append(part)
            self._size += len(part)
            return
        if not self._truncate:
            raise LineTooLong(f"a line longer than {self._limit} bytes")
        self._parts.append(part[: self._limit - self._size])
        lines.append(b"".join(self._parts))
        self._parts, self._size, self._dropping = [], 0, True


def describe_end(reason: Failure) -> str:
    """How a process ended, in words for a log line and an error."""
    code = getattr(reason.value, "exitCode", None)
    signal = getattr(reason.value, "signal", None)
    if signal is not None:
        return f"was killed by signal {signal}"
    return f"exited with status {code}"


class ChildProcess(ProcessProtocol):
    """The pipes of one child: messages out of stdout to ``on_message``, stderr to the log.

    ``ended`` fires with how the process ended, once it has; ``problem`` says why aigw
    killed it, if it did.
    """

    log = Logger()

    def __init__(
        self,
        backend: str,
        on_message: Callable[[Any], None],
        clock: Any,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self._on_message = on_message
        self._stdout = Lines(max_line_bytes)
        self._stderr = Lines(MAX_LOG_LINE, truncate=True)
        self._timers: list[IDelayedCall] = []
        self.ended: Deferred[str] = Deferred()
        self.pid: int | None = None
        self.problem: str | None = None

    def connectionMade(self) -> None:
        self.pid = getattr(self.transport, "pid", None)
        self.log.info(
            "backend {backend}: process {pid} started", backend=self.backend, pid=self.pid
        )

    def send(self, line: bytes) -> None:
        """One message (``line`` holds no newline) to the child's stdin."""
        if self.transport is not None:
            self.transport.writeSequence([line, b"\n"])

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 2:
            for line in self._stderr.feed(data):
                self.log.info(
                    "backend {backend} stderr: {line}",
                    backend=self.backend,
                    line=line.decode("utf-8", "replace").rstrip("\r"),
                )
            return
        if childFD != 1 or self.problem is not None:
            return
        try:
            lines = self._stdout.feed(data)
        except LineTooLong as error:
            self.kill(f"wrote {error} on stdout")
            return
        for line in lines:
            if self.problem is None and line.strip():
                self._message(line)

    def _message(self, line: bytes) -> None:
        try:
            # As an HTTP backend's reply is read: nothing nested deeper than aigw writes.
            message = jsonrpc.loads(line)
        except ValueError:
            # basic/transports "stdio": the server MUST NOT write anything else to stdout.
            self.log.warn(
                "backend {backend} wrote a line that is not JSON on stdout; skipped: {excerpt}",
                backend=self.backend,
                excerpt=line[:200].decode("utf-8", "replace"),
            )
            return
        self._on_message(message)

    def kill(self, problem: str) -> None:
        """End the child at once: it broke the protocol."""
        self.problem = problem
        self.log.warn(
            "backend {backend}: process {pid} {problem}; killing it",
            backend=self.backend,
            pid=self.pid,
            problem=problem,
        )
        self._signal("KILL")

    def stop(self) -> Deferred[str]:
        """Close stdin, then SIGTERM, then SIGKILL, each after a grace period; ``ended``."""
        if not self.ended.called:
            if self.transport is not None:
                self.transport.closeStdin()
            self._timers = [
                self.clock.callLater(STOP_GRACE_SECONDS, self._signal, "TERM"),
                self.clock.callLater(2 * STOP_GRACE_SECONDS, self._signal, "KILL"),
            ]
        return self.ended

    def _signal(self, name: str) -> None:
        try:
            if self.transport is not None:
                self.transport.signalProcess(name)
        except (ProcessExitedAlready, OSError):
            pass  # it ended meanwhile: processEnded is on its way

    def processEnded(self, reason: Failure) -> None:
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers = []
        if not self.ended.called:
            self.ended.callback(self.problem or describe_end(reason))
