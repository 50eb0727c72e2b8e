"""Drive a full-screen terminal program headlessly: a pseudo-terminal and a screen emulator.

The program runs on the slave side of a pty (``os.openpty``) as the leader of its own
session, with the pty as its controlling terminal; a thread reads the master side and
feeds every byte to a ``pyte`` screen (a VT100/xterm emulator), so :meth:`Terminal.screen`
is what a person would see, whatever cursor moves and partial redraws the program uses.
The emulator's answers to the program's queries (device attributes, cursor position)
go back through the pty, as a real terminal's would. Every byte read is also kept in a
log file (``raw_log``) for debugging.

Every wait has a deadline and fails with the whole screen in its message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pyte

from .processes import LOG_DIR, Process, _live, _live_lock

ENTER = "\r"
ESCAPE = "\x1b"
DOWN = "\x1b[B"
UP = "\x1b[A"


class ScreenTimeout(AssertionError):
    """What was awaited did not appear on the screen in time."""


class _Screen(pyte.Screen):  # type: ignore[misc]
    """A pyte screen whose answers to the program go back to it through the pty."""

    def __init__(self, columns: int, lines: int, answer: Callable[[str], None]) -> None:
        super().__init__(columns, lines)
        self._answer = answer

    def write_process_input(self, data: str) -> None:
        self._answer(data)


class Terminal:
    """``argv`` running in a ``columns`` x ``lines`` pseudo-terminal (see the module doc)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str],
        columns: int = 120,
        lines: int = 60,
        name: str = "terminal",
    ) -> None:
        self.name = name
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        self._master = master
        self._lock = threading.Lock()
        self._screen = _Screen(columns, lines, self._answer)
        self._stream = pyte.ByteStream(self._screen)
        self._closed = False
        self.raw_log = Path(LOG_DIR) / f"{name}-{os.getpid()}-{time.monotonic_ns()}.pty.log"
        self._raw = open(self.raw_log, "wb")  # noqa: SIM115 (closed in close())
        try:
            self.popen = subprocess.Popen(
                list(argv),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                # After setsid(): make the pty the controlling terminal, as a shell would.
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            )
        except BaseException:
            os.close(master)
            self._raw.close()
            raise
        finally:
            os.close(slave)
        # Stopped like every helper process (process group, SIGKILL fallback, atexit).
        self.process = Process(name, self.popen, self.raw_log)
        with _live_lock:
            _live.append(self.process)
        self._reader = threading.Thread(target=self._read, name=f"{name}-pty", daemon=True)
        self._reader.start()

    def _answer(self, data: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._master, data.encode())

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: the program and all its children closed the pty
                return
            if not data:
                return
            with self._lock:
                self._raw.write(data)
                self._stream.feed(data)

    def screen(self) -> str:
        """The screen as text, one line per row, trailing spaces removed."""
        with self._lock:
            return "\n".join(line.rstrip() for line in self._screen.display)

    def send(self, keys: str, pause: float = 0.3) -> None:
        """Type ``keys`` (use :data:`ENTER`, :data:`ESCAPE`, ...), then wait ``pause`` s."""
        os.write(self._master, keys.encode())
        time.sleep(pause)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 20.0) -> re.Match[str]:
        """Wait until ``pattern`` (a regex, or a plain string) is on the screen."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.screen())
            if found:
                return found
            self._check(f"{regex.pattern!r} on the screen", timeout, deadline)

    def wait_until(self, test: Callable[[str], bool], what: str, timeout: float = 20.0) -> str:
        """Wait until ``test(screen)`` is true and return that screen."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if test(text):
                return text
            self._check(what, timeout, deadline)

    def _check(self, what: str, timeout: float, deadline: float) -> None:
        """Fail with the screen past ``deadline`` or when the program exited; else pause."""
        if time.monotonic() > deadline:
            raise ScreenTimeout(self.failure(f"no {what} after {timeout} s"))
        if not self.process.alive():
            time.sleep(0.2)  # let the reader take the last bytes
            raise ScreenTimeout(self.failure(f"{self.name} exited before {what}"))
        time.sleep(0.05)

    def failure(self, message: str) -> str:
        return f"{message}; screen of {self.name} (raw output: {self.raw_log}):\n{self.screen()}"

    def close(self, timeout: float = 5.0) -> int | None:
        """Stop the program (:meth:`Process.stop`: its process group), close the pty."""
        if self._closed:
            return self.popen.returncode
        self._closed = True
        status = self.process.stop(timeout)
        self._reader.join(5.0)  # the pty gives EIO once no process holds its slave side
        with contextlib.suppress(OSError):
            os.close(self._master)
        with self._lock:
            self._raw.close()
        return status

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
