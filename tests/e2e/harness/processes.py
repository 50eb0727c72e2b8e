"""Start and stop the helper processes of the end-to-end tests and the demo.

Plain :mod:`subprocess`, bounded waits, everything on 127.0.0.1. Every process
started here is registered for an ``atexit`` fallback, so a crashed test session
does not leave servers behind; fixtures should still call :meth:`Process.stop`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import anyio

REPO_ROOT = Path(__file__).resolve().parents[3]
E2E_DIR = REPO_ROOT / "e2e"
NODE_MODULES = E2E_DIR / "node_modules"
# The Makefile's stamp for `make node`; written here too so both agree.
NODE_STAMP = NODE_MODULES / ".installed-stamp"
# Logs of every started process (kept after the run, for debugging); AIGW_E2E_LOG_DIR
# picks the parent directory (CI can upload it as an artifact).
_LOG_PARENT = os.environ.get("AIGW_E2E_LOG_DIR")
if _LOG_PARENT:
    os.makedirs(_LOG_PARENT, exist_ok=True)
LOG_DIR = Path(tempfile.mkdtemp(prefix="aigw-e2e-logs-", dir=_LOG_PARENT or None))

T = TypeVar("T")

_live: list[Process] = []
_live_lock = threading.Lock()


class ProcessError(RuntimeError):
    """A helper process did not become ready; the message ends with its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(check: Callable[[], T], seconds: float = 30.0) -> T:
    """``check()`` once it is true, polled every 0.1 s for at most ``seconds`` (its last,
    false value then): what other processes do shows up a little later."""
    deadline = time.monotonic() + seconds
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


async def until_async(check: Callable[[], T], seconds: float = 10.0) -> T:
    """``until`` for async tests: polls without blocking the event loop (where the
    test's own servers and clients run)."""
    for _ in range(int(seconds * 10)):
        found = check()
        if found:
            return found
        await anyio.sleep(0.1)
    return check()


class Process:
    """A started helper process with its combined stdout/stderr in ``log_path``."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.ready_match: re.Match[str] | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return not _has_exited(self.popen)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the process group, SIGKILL after ``timeout`` seconds; always reaps.

        The leader is reaped only after its group got a final SIGKILL (for children that
        outlived it): while the unreaped leader exists its pid, which is the group id,
        cannot be reused, so the signal cannot reach an unrelated process.
        """
        with _live_lock:
            if self in _live:
                _live.remove(self)
        if self.popen.returncode is None:
            if not _has_exited(self.popen):
                _signal_group(self.popen, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while not _has_exited(self.popen) and time.monotonic() < deadline:
                    time.sleep(0.02)
            _signal_group(self.popen, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5.0)
        return self.popen.returncode

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Process {self.name} pid={self.pid} log={self.log_path}>"


def _has_exited(popen: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, without reaping it (see :meth:`Process.stop`)."""
    if popen.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return popen.poll() is not None
    return info is not None


def _signal_group(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # start_new_session=True makes the child a group leader: pgid == pid. Only called
    # while the leader is not reaped yet, so the group id still belongs to it.
    if popen.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


def _url_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is listening
    except (OSError, ValueError):
        return False


def start_process(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    ready_line_regex: str | None = None,
    ready_url: str | None = None,
    timeout: float = 30.0,
    name: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    attempts: int = 1,
) -> Process:
    """Start ``argv`` and wait until it is ready.

    Ready means: a line of its output (stdout or stderr) matches ``ready_line_regex``
    (the match is kept in ``.ready_match``), and/or ``ready_url`` answers HTTP (any
    status). ``env`` is added to a copy of ``os.environ``. Raises :class:`ProcessError`
    (after stopping the process) when it exits or is not ready within ``timeout``.

    ``attempts`` > 1 starts a process that is still running but not ready at ``timeout``
    once more (for test infrastructure, such as the authorization server, whose start can
    stall on a shared CI machine: one did, 30 s after printing its first line). A process
    that exits is never started again: that is a failure to report.
    """
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(argv, env, ready_line_regex, ready_url, timeout, name, cwd)
        except _NotReady as stalled:
            if attempt == attempts:
                raise ProcessError(str(stalled)) from None
            print(f"{stalled}\nstarting it again (attempt {attempt + 1} of {attempts})")
    raise ValueError(f"attempts must be at least 1, not {attempts}")


class _NotReady(Exception):
    """The process was still running but not ready within its timeout."""


def _start_once(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    ready_line_regex: str | None,
    ready_url: str | None,
    timeout: float,
    name: str | None,
    cwd: str | os.PathLike[str] | None,
) -> Process:
    name = name or Path(argv[0]).name
    fd, log_name = tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=LOG_DIR)
    log_path = Path(log_name)
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with os.fdopen(fd, "wb") as log_file:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd if cwd is not None else REPO_ROOT,
            start_new_session=True,
        )
    proc = Process(name, popen, log_path)
    with _live_lock:
        _live.append(proc)
    pattern = re.compile(ready_line_regex) if ready_line_regex else None
    deadline = time.monotonic() + timeout
    while True:
        line_ok = True
        if pattern is not None:
            proc.ready_match = next(
                (m for m in map(pattern.search, proc.log().splitlines()) if m), None
            )
            line_ok = proc.ready_match is not None
        url_ok = ready_url is None or (line_ok and _url_answers(ready_url))
        if line_ok and url_ok:
            return proc
        if _has_exited(popen):
            proc.stop()
            raise ProcessError(
                f"{name} exited with status {popen.returncode} before it was ready; "
                f"log {log_path}:\n{proc.log_tail()}"
            )
        if time.monotonic() > deadline:
            proc.stop()
            raise _NotReady(
                f"{name} not ready after {timeout}s; log {log_path}:\n{proc.log_tail()}"
            )
        time.sleep(0.05)


def ensure_node_modules(timeout: float = 300.0) -> Path:
    """Run ``npm ci`` in ``e2e/`` unless ``e2e/node_modules`` is complete. Idempotent."""
    lock = E2E_DIR / "package-lock.json"
    if NODE_STAMP.exists() and NODE_STAMP.stat().st_mtime >= lock.stat().st_mtime:
        return NODE_MODULES
    marker = NODE_MODULES / ".package-lock.json"  # written by npm at the end of a good install
    if not (marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=E2E_DIR,
            check=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    NODE_STAMP.touch()
    return NODE_MODULES


def node_executable() -> str:
    return os.environ.get("AIGW_E2E_NODE", "node")


def python_executable() -> str:
    return sys.executable


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        live = list(_live)
    for proc in live:
        proc.stop(timeout=2.0)
