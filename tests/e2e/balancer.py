"""HAProxy (the Debian package) round-robin in front of three aigw processes sharing one
session key, on the shipped ``etc/haproxy/aigw.cfg`` with a test's free ports put in
place of its addresses: the production shape of docs/scale-out.md, for the e2e tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from .aigw import Backend, Gateway, start_gateway, write_session_key
from .harness.processes import LOG_DIR, REPO_ROOT, Process, free_port, start_process

CONFIG = REPO_ROOT / "etc" / "haproxy" / "aigw.cfg"
#: The addresses the shipped config names: the frontend, then aigw1..3.
SHIPPED = ["127.0.0.1:1975", "127.0.0.1:1981", "127.0.0.1:1982", "127.0.0.1:1983"]
#: HAProxy's httplog line (logasap: "+" marks totals so far):
#: "... mcp aigw/aigw2 0/0/0/3/+3 200 +262 - - ---- 3/3/3/2/+1 0/0 "POST /mcp HTTP/1.1"";
#: the fifth connection count is the retries, "+" when redispatched to another server.
LOG_LINE = re.compile(
    r" mcp aigw/(aigw\d|<NOSRV>) \S+ (\d{3}) .* \d+/\d+/\d+/\d+/(\+?\d+) \d+/\d+ "
    r"\"(GET|POST|DELETE) /mcp"
)


@dataclass
class Logged:
    """One request as HAProxy logged it."""

    method: str
    server: str
    status: str
    retries: str


@dataclass
class Balanced:
    gateways: list[Gateway]
    haproxy: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def logged(self) -> list[Logged]:
        """Each request to /mcp HAProxy logged, in order."""
        return [
            Logged(m.group(4), m.group(1), m.group(2), m.group(3))
            for m in map(LOG_LINE.search, self.haproxy.log().splitlines())
            if m
        ]

    def gets_since(self, first: int) -> list[Logged]:
        """The GETs HAProxy logged past its ``first`` logged requests."""
        return [r for r in self.logged()[first:] if r.method == "GET"]

    async def stop_the_holder(self, held: Logged) -> float:
        """SIGTERM the process that served ``held`` (a client's GET stream); once it
        exited (0, no traceback), the ``time.monotonic()`` of the signal."""
        victim = self.gateways[int(held.server[-1]) - 1]
        stopped = time.monotonic()
        victim.process.popen.send_signal(signal.SIGTERM)
        code = await anyio.to_thread.run_sync(victim.process.popen.wait, 30)
        assert code == 0, victim.process.log_tail()
        assert "Traceback" not in victim.process.log()
        return stopped

    def servers(self, method: str = "POST") -> list[tuple[str, str]]:
        """(server, status) of each ``method`` request HAProxy logged, in order."""
        return [(r.server, r.status) for r in self.logged() if r.method == method]


def render(ports: list[int], without: str | None = None) -> str:
    """The shipped config with these ports in place of its addresses (and, given
    ``without``, that one line of it left out; nothing else)."""
    text = CONFIG.read_text()
    for address, port in zip(SHIPPED, ports, strict=True):
        assert text.count(address) == 1, address
        text = text.replace(address, f"127.0.0.1:{port}")
    if without is not None:
        line = f"    {without}\n"
        assert text.count(line) == 1, without
        text = text.replace(line, "")
    return text


@contextmanager
def start_balanced(
    backends: list[Backend],
    issuer: str | None = None,
    extra: str = "",
    sessions: str = "",
    without: str | None = None,
    metrics: bool = False,
) -> Iterator[Balanced]:
    """Three aigw processes sharing one key file, HAProxy on the shipped config in front
    (its URL is their public_url); everything stopped on exit.  ``extra``: more config
    (``limits:``); ``sessions``: more keys of ``sessions`` (``", redis_url: ..."``);
    ``without``: a line of the shipped config left out (``render``); ``metrics``: each
    process serves them on a free port of its own (``Gateway.scrape``)."""
    haproxy = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
    )
    if haproxy is None:
        pytest.skip("haproxy is not installed (.ci/run installs it)")
    directory = tempfile.mkdtemp(prefix="aigw-lb-", dir=LOG_DIR)
    key = write_session_key(directory)
    front = free_port()
    started: list[Gateway] = []
    proxy: Process | None = None
    try:
        for _ in range(3):
            # Each process's own address, where the others forward what waits there.
            port = free_port()
            started.append(
                start_gateway(
                    backends,
                    issuer=issuer,
                    session_key=key,
                    public_url=f"http://127.0.0.1:{front}",
                    port=port,
                    extra=extra,
                    metrics=metrics,
                    sessions=f", peer_url: 'http://127.0.0.1:{port}/mcp'{sessions}",
                )
            )
        config = Path(directory) / "haproxy.cfg"
        config.write_text(render([front, *(g.port for g in started)], without))
        proxy = start_process(
            [haproxy, "-db", "-f", str(config)],
            ready_url=f"http://127.0.0.1:{front}/healthz",
            timeout=20,
            name="haproxy",
        )
        yield Balanced(started, proxy, front)
    finally:
        if proxy is not None:
            proxy.stop()
        for gateway in started:
            gateway.stop()


def served(gateway: Gateway, method: str) -> int:
    """How many ``method`` requests this process's access log shows it answered."""
    return sum(
        1
        for line in gateway.process.log().splitlines()
        if "[aigw.access" in line and f"] {method} " in line
    )
