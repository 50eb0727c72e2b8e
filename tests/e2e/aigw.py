"""Start the real aigw daemon (``twistd -n aigw --config``) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2

from tests.prometheus_text import Scrape

from .harness.processes import LOG_DIR, Process, free_port, start_process

#: The ``aigw`` command of this virtualenv.
AIGW = str(Path(sys.executable).parent / "aigw")


async def aigw_command(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """``aigw ARGV...`` (``doctor``, ``tokens list``...) run to its end, whatever its status."""
    return await anyio.run_process([AIGW, *argv], check=False)


@dataclass
class Gateway:
    """A running aigw: ``url`` is its MCP endpoint."""

    process: Process
    port: int
    config_path: str
    #: Where ``GET /metrics`` is served (None: ``metrics: off``).
    metrics_port: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/mcp"

    def stop(self) -> int | None:
        return self.process.stop(timeout=15)

    def scrape(self) -> Scrape:
        """One ``GET /metrics`` of it (started with ``metrics=True``), every sample parsed."""
        response = httpx2.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10)
        response.raise_for_status()
        return Scrape.parse(response.headers["content-type"], response.text)

    def rss(self) -> int:
        """The aigw process's resident set, in bytes (/proc/PID/status VmRSS)."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of a fresh scrape: ``name`` with exactly these labels, None when there
        is none (several samples that must agree with each other: read one ``scrape()``)."""
        return self.scrape().value(name, **labels)


#: A backend: (name, url), or (name, url, YAML lines of its own such as ``auth:``).
Backend = tuple[str, str] | tuple[str, str, str]


def backend_yaml(backends: Sequence[Backend], extra: str = "") -> str:
    lines = ["backends:"]
    for name, url, *own in backends:
        lines += [f"  - name: {name}", f"    url: {url}", "    timeout: 20s"]
        for more in (*own, extra):
            lines += ["    " + line for line in more.splitlines()]
    return "\n".join(lines) + "\n"


def write_session_key(directory: str) -> str:
    """A new ``sessions.secret_file`` in ``directory`` (to share between gateways); its path."""
    key = os.path.join(directory, "session.key")
    with open(key, "wb") as handle:
        handle.write(os.urandom(32))
    os.chmod(key, 0o600)  # else aigw warns (and aigw doctor fails) of a key others may read
    return key


def start_gateway(
    backends: Sequence[Backend],
    *,
    issuer: str | None = None,
    auth_extra: str = "",
    extra: str = "",
    port: int | None = None,
    metrics: bool = False,
    more_backends: str = "",
    session_key: str | None = None,
    public_url: str | None = None,
    sessions: str = "",
    log_level: str = "debug",
    log_format: str = "text",
) -> Gateway:
    """Write a config for these backends and start ``twistd -n aigw --config`` on it.

    ``metrics``: serve them on a free port (the default, 9464, is one for every
    gateway the tests start at once); off otherwise.
    ``more_backends``: YAML list items added to ``backends`` as they are (stdio ones).
    ``session_key``: a key file to share with other gateways (default: a new key).
    ``public_url``: what clients and tokens name (default: this gateway's own URL; a load
    balancer's in front of several).
    ``sessions``: more keys of the ``sessions`` mapping (``", max_streams_per_user: 9"``).
    ``log_level``: ``logging.level`` (debug, so a failing test's log says everything);
    ``log_format``: ``logging.format`` (text or json)."""
    port = port or free_port()
    metrics_port = free_port() if metrics else None
    directory = tempfile.mkdtemp(prefix="aigw-", dir=LOG_DIR)
    key = session_key or write_session_key(directory)
    if issuer is None:
        auth = "auth: none\n"
    else:
        auth = (
            "auth:\n"
            f"  issuer: {issuer}\n"
            "  scopes_supported: [mcp:tools, tools:call]\n"
            "  required_scopes: [mcp:tools]\n"
            "  jwks_unknown_kid_cooldown: 1s\n"
            "  jwks_min_refresh_interval: 1s\n"
            + "".join("  " + line + "\n" for line in auth_extra.splitlines())
        )
    text = (
        f'listen: ["tcp:{port}:interface=127.0.0.1"]\n'
        f"public_url: {public_url or f'http://127.0.0.1:{port}'}\n"
        "mcp_path: /mcp\n"
        + auth
        + backend_yaml(backends)
        + more_backends
        + f"sessions: {{secret_file: {key}{sessions}}}\n"
        + f"logging: {{format: {log_format}, level: {log_level}}}\n"
        + (
            f"metrics: {{listen: 'tcp:{metrics_port}:interface=127.0.0.1'}}\n"
            if metrics_port
            else "metrics: off\n"
        )
        + extra
    )
    path = os.path.join(directory, "aigw.yaml")
    with open(path, "w") as handle:
        handle.write(text)
    return run_gateway(path, port, metrics_port)


def serving_gateway(backends: Sequence[Backend], **options: Any) -> Iterator[Gateway]:
    """``start_gateway(backends, **options)`` for a fixture: yielded, stopped after."""
    gateway = start_gateway(backends, **options)
    try:
        yield gateway
    finally:
        gateway.stop()


def run_gateway(
    path: str, port: int, metrics_port: int | None = None, name: str = "aigw"
) -> Gateway:
    """``twistd -n aigw --config PATH`` on a config file written already (it listens on
    ``port``), run in the file's directory: ready once ``/healthz`` answers."""
    twistd = str(Path(sys.executable).parent / "twistd")
    process = start_process(
        [twistd, "-n", "--pidfile=", "aigw", "--config", path],
        ready_url=f"http://127.0.0.1:{port}/healthz",
        timeout=30,
        name=name,
        cwd=os.path.dirname(path),
    )
    return Gateway(process, port, path, metrics_port)


#: A 2025-11-25 ``initialize`` request (id 1) from a client that declares nothing.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "0"},
    },
}


#: The headers of a 2025-11-25 client's POST to the MCP endpoint (``Mcp-Session-Id``
#: added once it has a session).
MCP_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-11-25",
}


def post_json(url: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
    """POST JSON; the status, the headers (lower-case names) and the JSON body."""
    answer = httpx2.post(url, json=body, headers=headers, timeout=30)
    return answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, answer.json()


def open_session(url: str) -> dict[str, str]:
    """The headers of a new 2025-11-25 session opened at ``url`` (``initialize``)."""
    status, found, body = post_json(url, MCP_HEADERS, INITIALIZE)
    assert status == 200, body
    return {**MCP_HEADERS, "Mcp-Session-Id": found["mcp-session-id"]}


def mcp_post(gateway: Gateway, token: str | None, body: Any = None) -> httpx2.Response:
    """POST one JSON-RPC message (an ``initialize`` unless given) with this bearer token."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.post(gateway.url, json=body or INITIALIZE, headers=headers, timeout=20)


def edit_and_reload(gateway: Gateway, edit: Callable[[str], str]) -> None:
    """Rewrite the gateway's file with ``edit``, then SIGHUP (as ``systemctl reload``)."""
    with open(gateway.config_path) as handle:
        text = handle.read()
    with open(gateway.config_path, "w") as handle:
        handle.write(edit(text))
    signal_reload(gateway)


def reload_with(gateway: Gateway, backends: Sequence[Backend]) -> None:
    """Rewrite the backends of the gateway's file, then reload."""

    def rewrite(text: str) -> str:
        head, _, rest = text.partition("backends:\n")
        return head + backend_yaml(backends) + rest[rest.index("sessions:") :]

    edit_and_reload(gateway, rewrite)


def signal_reload(gateway: Gateway) -> None:
    """SIGHUP; returns once aigw logged the reload's outcome."""

    def outcomes() -> int:
        log = gateway.process.log()
        return log.count("reloaded ") + log.count("reload failed")

    done = outcomes()
    gateway.process.popen.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while outcomes() == done:
        assert time.monotonic() < deadline, gateway.process.log_tail()
        time.sleep(0.05)
