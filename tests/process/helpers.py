"""What the process tests share: where the commands are, running ``aigw`` to its end, a
free port, a config, the daemon's health, stopping it, a daemon served for the length of
a ``with``, and one MCP POST (no test module imports another)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

ACCEPT = "application/json, text/event-stream"
#: A 2025-06-18 ``initialize`` request (id 1) from a client that declares nothing.
INITIALIZE: dict[str, object] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EX_CONFIG = 78


def run_aigw(
    *argv: str, cwd: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``aigw ARGV...`` (``check``, ``run`` that fails, ``convert``...) run to its end,
    whatever its status; its output captured."""
    return subprocess.run(
        [str(BIN / "aigw"), *argv], capture_output=True, timeout=60, cwd=cwd, env=env
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: str, port: int, extra: str = "", metrics: str = "off") -> str:
    """``metrics``: off, or a mapping (its default port, 9464, is one for all tests)."""
    path = os.path.join(directory, "aigw.yaml")
    with open(path, "w") as handle:
        handle.write(
            f"""\
listen: ["tcp:{port}:interface=127.0.0.1"]
public_url: http://127.0.0.1:{port}
mcp_path: /mcp
auth: none
metrics: {metrics}
backends:
  - name: nowhere
    url: http://127.0.0.1:9/mcp
{extra}"""
        )
    return path


def wait_for_health(
    port: int, process: subprocess.Popen[bytes], timeout: float = 20.0
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited early with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
                return json.loads(reply.read())  # type: ignore[no-any-return]
        except OSError:
            time.sleep(0.1)
    raise AssertionError("daemon did not answer /healthz in time")


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError("daemon did not exit after SIGTERM") from None


@attrs.define
class Served:
    """A daemon run by ``serving``: its first ``/healthz`` answer; once stopped, its exit
    status and everything it wrote."""

    health: dict[str, object]
    code: int | None = None
    output: str = ""


@contextmanager
def serving(argv: list[str], port: int, directory: str) -> Iterator[Served]:
    """The daemon ``argv`` started in ``directory`` (its output in ``directory/stderr``),
    answering ``/healthz`` on ``port``; stopped with SIGTERM when the ``with`` ends,
    however it ends."""
    with open(os.path.join(directory, "stderr"), "w+b") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
        try:
            served = Served(wait_for_health(port, process))
            yield served
        finally:
            code = stop(process)
        log.seek(0)
        served.code = code
        served.output = log.read().decode()


def post(
    url: str, body: dict[str, object], session: str | None = None
) -> tuple[str | None, list[dict[str, object]]]:
    """POST one JSON-RPC message; the session id answered and the messages (JSON or SSE)."""
    headers = {"Content-Type": "application/json", "Accept": ACCEPT}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    # A minute: a stdio child starts on first use, and the machine may be busy.
    with urllib.request.urlopen(request, timeout=60) as reply:
        text = reply.read().decode()
        session_id = reply.headers.get("Mcp-Session-Id")
        if reply.headers.get_content_type() == "text/event-stream":
            found = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
        else:
            found = [json.loads(text)] if text else []
    return session_id, found


def open_session(url: str) -> str | None:
    """``initialize``, then ``notifications/initialized`` (MCP basic/lifecycle); the
    session id answered."""
    session, _ = post(url, INITIALIZE)
    post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    return session
