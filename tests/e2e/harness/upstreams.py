"""Start the upstream MCP servers of the end-to-end tests: server-everything, pyserver,
``e2e/resumable.mjs`` (a resumable GET stream), and the Twisted servers of tests/e2e/upstreams
that misbehave on purpose."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .processes import (
    E2E_DIR,
    NODE_MODULES,
    Process,
    ensure_node_modules,
    free_port,
    node_executable,
    python_executable,
    start_process,
)

SERVER_EVERYTHING_JS = (
    NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
)
RESUMABLE_JS = E2E_DIR / "resumable.mjs"
LOOPBACK_PRELOAD = E2E_DIR / "loopback.cjs"
ABORT_PROBE_PRELOAD = E2E_DIR / "abort-probe.cjs"
ABORT_PROBE_LINE = "aigw-e2e-probe: aborted "


@dataclass
class Upstream:
    """A running upstream MCP server: ``url`` is its Streamable HTTP endpoint."""

    name: str
    url: str
    port: int
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_server_everything(port: int | None = None, timeout: float = 30.0) -> Upstream:
    """``mcp-server-everything streamableHttp`` on ``http://127.0.0.1:<port>/mcp``.

    It calls ``app.listen(PORT)`` with no host; the ``e2e/loopback.cjs`` preload makes
    that bind 127.0.0.1 only.  The ``e2e/abort-probe.cjs`` preload logs each request
    handler the SDK aborted on ``notifications/cancelled`` (see :func:`aborted_requests`).
    """
    ensure_node_modules()
    port = port or free_port()
    proc = start_process(
        [
            node_executable(),
            "--require",
            str(LOOPBACK_PRELOAD),
            "--require",
            str(ABORT_PROBE_PRELOAD),
            str(SERVER_EVERYTHING_JS),
            "streamableHttp",
        ],
        {"PORT": str(port)},
        ready_line_regex=r"listening on port \d+",
        timeout=timeout,
        name="server-everything",
    )
    return Upstream("everything", f"http://127.0.0.1:{port}/mcp", port, proc)


def start_resumable(timeout: float = 30.0) -> Upstream:
    """``node e2e/resumable.mjs`` on ``http://127.0.0.1:<port>/mcp``: the TypeScript SDK's
    Streamable HTTP server with an event store that resumes each GET stream in order."""
    ensure_node_modules()
    port = free_port()
    proc = start_process(
        [node_executable(), str(RESUMABLE_JS), "--port", str(port)],
        ready_line_regex=r"^READY (\S+)",
        timeout=timeout,
        name="resumable",
    )
    return Upstream("resumable", f"http://127.0.0.1:{port}/mcp", port, proc)


def aborted_requests(upstream: Upstream) -> int:
    """How many request handlers server-everything aborted on ``notifications/cancelled``."""
    return sum(line.startswith(ABORT_PROBE_LINE) for line in upstream.process.log().splitlines())


def start_pyserver(
    port: int | None = None,
    *,
    stateless: bool = False,
    many_tools: bool = False,
    page_size: int | None = None,
    json_response: bool = False,
    auth_issuer: str | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
    modern_only: bool = False,
    tls: tuple[str, str] | None = None,
    ca_file: str | None = None,
) -> Upstream:
    """``python -m tests.e2e.upstreams.pyserver`` on ``http://127.0.0.1:<port>/mcp``;
    ``tls``: (certificate file, key file) to serve ``https`` instead; ``ca_file``: the
    roots it trusts as a client (``SSL_CERT_FILE``: the JWKS of an ``https`` issuer)."""
    port = port or free_port()
    argv = [python_executable(), "-m", "tests.e2e.upstreams.pyserver", "--port", str(port)]
    if stateless:
        argv.append("--stateless")
    if modern_only:
        argv.append("--modern-only")
    if many_tools:
        argv.append("--many-tools")
    if page_size is not None:
        argv += ["--page-size", str(page_size)]
    if json_response:
        argv.append("--json-response")
    if auth_issuer is not None:
        argv += ["--auth-issuer", auth_issuer]
    if tls is not None:
        argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    argv += list(extra_args)
    proc = start_process(
        argv,
        {"SSL_CERT_FILE": ca_file} if ca_file is not None else None,
        ready_line_regex=r"^READY (\S+)",
        timeout=timeout,
        name="pyserver-stateless" if stateless else "pyserver",
    )
    scheme = "http" if tls is None else "https"
    return Upstream("pyserver", f"{scheme}://127.0.0.1:{port}/mcp", port, proc)


def start_twisted_upstream(module: str) -> Process:
    """``python -m tests.e2e.upstreams.MODULE --port N`` (``faulty``, ``flood``), ready at
    its ``READY <url>`` line (``tests.e2e.upstreams.serve``)."""
    port = free_port()
    return start_process(
        [python_executable(), "-m", f"tests.e2e.upstreams.{module}", "--port", str(port)],
        ready_line_regex=r"^READY (\S+)",
        name=module,
    )


@contextmanager
def serving_twisted_upstream(module: str) -> Iterator[str]:
    """:func:`start_twisted_upstream` for a ``with`` block: its base URL, stopped at the end."""
    process = start_twisted_upstream(module)
    try:
        assert process.ready_match is not None
        yield process.ready_match.group(1)
    finally:
        process.stop()
