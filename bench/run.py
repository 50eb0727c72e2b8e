"""aigw benchmark: one table of aigw against `direct` and its peers.

    .venv/bin/python bench/run.py [--rows direct,aigw,...] [--rounds 3]
                                  [--duration 5] [--quick] [--json FILE]

Everything runs on 127.0.0.1 and is stopped on exit (its own process groups):

* the authorization server of the end-to-end tests (``e2e/as.mjs``), started
  with a signing key made here, so the benchmark can mint its own access
  tokens (RS256, iss, aud = the target's resource URL, exp, scope) that the AS
  publishes the key for; without its npm packages, a static JWKS server here;
* ``bench/upstream.mjs``, a minimal, fast reference MCP server;
* each target of the rows asked for:

  ``direct``      the upstream itself, no auth;
  ``aigw``        ``twistd -n aigw`` with a generated config, JWT auth, ``metrics: off``;
  ``aigw-metrics`` the same with its Prometheus metrics on (their own port), so
                  the cost of counting shows side by side with ``aigw``;
  ``aigw-pypy``   the same under PyPy (``bench/.venvs/pypy``), when it installs;
  ``fastmcp``     FastMCP's proxy with JWTVerifier, one reused upstream session
                  (``bench/peers/fastmcp_proxy.py`` in ``bench/.venvs/fastmcp``);
  ``mcp-proxy``   sparfenyuk's mcp-proxy, no auth: its Streamable HTTP server
                  mode over its stdio client mode (``bench/.venvs/mcp-proxy``).

Load comes only from ``wrk`` with ``bench/wrk/mcp_call.lua`` (tools/call,
a unique JSON-RPC id per request).  For each round (rows interleaved, their
order rotated), each row is measured at each concurrency; the table shows
medians over rounds.  A point with any non-2xx, socket error or reply without
a JSON-RPC result fails its row.  Peak RSS is VmHWM of the target's processes.

The output ends with one line:
    aigw: rps32=<n> added_p50_ms=<n> best_peer_ratio=<n> rss_mib=<n> x2_ratio=<n>
(``na`` where not measured): ``rss_mib`` is the ``aigw`` row's peak RSS after the run
(VmHWM), ``x2_ratio`` the ``aigw-x2`` row's req/s at the highest concurrency over the
``aigw`` row's (two processes on one port against one).  When ``aigw`` and
``aigw-metrics`` were both measured, the line before it says what the metrics cost:
    aigw-metrics: rps32=<n> rps32_vs_aigw=<n> p50_c1_vs_aigw=<n>
Exit status 1 when a row asked for failed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENVS = Path(os.environ.get("AIGW_BENCH_VENVS", BENCH / ".venvs"))
LUA = BENCH / "wrk" / "mcp_call.lua"
PROTOCOL = "2025-11-25"
HOST = "127.0.0.1"
ALL_ROWS = ("direct", "aigw", "aigw-metrics", "aigw-x2", "aigw-pypy", "fastmcp", "mcp-proxy")
PEERS = ("fastmcp", "mcp-proxy")
SCOPE = "mcp:tools"
#: wrk's and the Lua script's counts of what went wrong (WRKRESULT keys).
ERROR_KEYS = ("non2xx", "connect_errors", "read_errors", "write_errors", "timeouts", "bad_replies")


class Skip(Exception):
    """A row that cannot run here (not installed): noted, not a failure."""


class Fail(Exception):
    """A row that should run and did not."""


# --------------------------------------------------------------------------
# processes


try:  # looked up before any fork: the child only makes the call
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the benchmark dies (Linux)."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 20) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


class Processes:
    """Every process started, each in its own process group, stopped at exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        stdout_pipe: bool = False,
        pass_fds: tuple[int, ...] = (),
    ) -> Proc:
        log = self.workdir / f"{name}.log"
        fh = open(log, "wb")  # noqa: SIM115 - owned by the child
        full_env = dict(os.environ)
        full_env.update(env or {})
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else fh,
            stderr=fh,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            pass_fds=pass_fds,
        )
        fh.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            # the group may outlive its leader (mcp-proxy's stdio child)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=1)
            if proc.popen.stdout is not None:
                proc.popen.stdout.close()
        self.procs.clear()


def read_line(proc: Proc, prefix: str, timeout: float) -> str:
    """The first stdout line of ``proc`` starting with ``prefix``."""
    assert proc.popen.stdout is not None
    result: list[str] = []

    def reader() -> None:
        assert proc.popen.stdout is not None
        for raw in proc.popen.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith(prefix):
                result.append(line)
                break
        # keep draining so the child never blocks on a full pipe
        for _ in proc.popen.stdout:
            pass

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result:
            return result[0]
        if not proc.alive():
            break
        time.sleep(0.02)
    raise Fail(f"{proc.name} did not print {prefix!r}: {proc.tail()}")


def wait_port(proc: Proc, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise Fail(f"{proc.name} exited ({proc.popen.returncode}): {proc.tail()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise Fail(f"{proc.name} did not listen on {port} within {timeout:.0f}s: {proc.tail()}")


def wait_ready(proc: Proc, url: str, timeout: float) -> None:
    """Poll a readiness URL until it answers 200."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise Fail(f"{proc.name} exited ({proc.popen.returncode}): {proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.read()[:300].decode(errors='replace')}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise Fail(f"{proc.name} not ready within {timeout:.0f}s: {last} {proc.tail(3)}")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (via /proc/*/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def vm_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` size in KiB: ``VmRSS`` (now), ``VmHWM`` (peak)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def vm_hwm_kib(pid: int) -> int:
    return vm_kib(pid, "VmHWM")


# --------------------------------------------------------------------------
# the authorization server and tokens


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Auth:
    issuer: str
    jwks_uri: str
    kind: str
    private_key: Any
    kid: str

    def token(self, audience: str, lifetime: int = 3600, subject: str = "bench") -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": subject,
            "client_id": "bench",
            "scope": SCOPE,
            "jti": secrets.token_hex(8),
            "iat": now,
            "exp": now + lifetime,
        }
        return jwt.encode(
            claims, self.private_key, "RS256", headers={"kid": self.kid, "typ": "at+jwt"}
        )


def _signing_key() -> tuple[Any, str, dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = "bench-" + secrets.token_hex(4)
    priv = key.private_numbers()
    pub = priv.public_numbers
    jwk = {
        "kty": "RSA",
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
        "n": _b64(pub.n),
        "e": _b64(pub.e),
        "d": _b64(priv.d),
        "p": _b64(priv.p),
        "q": _b64(priv.q),
        "dp": _b64(priv.dmp1),
        "dq": _b64(priv.dmq1),
        "qi": _b64(priv.iqmp),
    }
    return key, kid, jwk


def start_test_suite_as(procs: Processes) -> Auth:
    """e2e/as.mjs (oidc-provider) signing with a key made here."""
    if not (ROOT / "e2e" / "node_modules" / "oidc-provider").is_dir():
        raise Skip("e2e/node_modules missing (make node)")
    key, kid, jwk = _signing_key()
    jwks_file = procs.workdir / "as-jwks.json"
    jwks_file.write_text(json.dumps({"keys": [jwk]}))
    jwks_file.chmod(0o600)
    proc = procs.start(
        "as", ["node", "e2e/as.mjs", "--port", "0", "--jwks", str(jwks_file)], stdout_pipe=True
    )
    issuer = read_line(proc, "READY ", 30).split(" ", 1)[1]
    meta = http_json("GET", issuer + "/.well-known/oauth-authorization-server")
    return Auth(issuer, meta["jwks_uri"], "e2e/as.mjs", key, kid)


def start_static_as(procs: Processes) -> Auth:
    """A static metadata + JWKS server in this process (fallback)."""
    key, kid, jwk = _signing_key()
    public = {k: jwk[k] for k in ("kty", "kid", "alg", "use", "n", "e")}
    port = free_port()
    issuer = f"http://{HOST}:{port}"
    docs = {
        "/jwks": {"keys": [public]},
        "/.well-known/oauth-authorization-server": {
            "issuer": issuer,
            "jwks_uri": issuer + "/jwks",
            "token_endpoint": issuer + "/token",
            "authorization_endpoint": issuer + "/auth",
            "response_types_supported": ["code"],
            "scopes_supported": [SCOPE],
        },
    }
    docs["/.well-known/openid-configuration"] = docs["/.well-known/oauth-authorization-server"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            doc = docs.get(self.path.split("?")[0])
            body = json.dumps(doc).encode() if doc is not None else b"{}"
            self.send_response(200 if doc is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Auth(issuer, issuer + "/jwks", "static JWKS", key, kid)


def start_auth(procs: Processes) -> Auth:
    """The one place to change how the benchmark gets its issuer and tokens."""
    try:
        return start_test_suite_as(procs)
    except (Skip, Fail, OSError, urllib.error.URLError) as e:
        print(f"# e2e/as.mjs not usable ({e}); using a static JWKS server", file=sys.stderr)
        return start_static_as(procs)


def start_upstream(procs: Processes, *flags: str) -> tuple[Proc, str]:
    """``bench/upstream.mjs`` on a free port: the process and its MCP URL."""
    proc = procs.start(
        "upstream", ["node", str(BENCH / "upstream.mjs"), "0", *flags], stdout_pipe=True
    )
    port = int(read_line(proc, "LISTENING ", 20).split()[1])
    return proc, f"http://{HOST}:{port}/mcp"


def start_env(procs: Processes, *upstream_flags: str) -> Env:
    """The authorization server and the reference upstream every target uses."""
    auth = start_auth(procs)
    upstream, url = start_upstream(procs, *upstream_flags)
    return Env(procs, auth, url, upstream)


def guarded(prefix: str, keep: bool, body: Callable[[Processes], bool]) -> int:
    """Run ``body`` (it returns True when something failed) with a fresh work
    directory and its processes: SIGTERM and SIGHUP interrupt it, every process
    is stopped at the end, the logs are kept when it failed (or ``keep``).
    The exit status: 1 when it failed, else 0."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    procs = Processes(workdir)

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    failed = True
    try:
        failed = body(procs)
    except KeyboardInterrupt as e:
        print(f"# interrupted ({e})", file=sys.stderr)
    except Fail as e:
        print(f"# benchmark failed: {e}", file=sys.stderr)
    finally:
        procs.stop_all()
        if failed or keep:
            print(f"# logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------
# MCP over HTTP, for set-up only (load comes from wrk)


def http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Any:
    return http_call(method, url, body, headers, timeout)[1]


def http_call(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
    want_id: Any = None,
) -> tuple[dict[str, str], Any, int]:
    data = json.dumps(body).encode() if body is not None else None
    # only ever http://127.0.0.1 URLs made here
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            status, hdrs, raw = resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        detail = e.read()[:300].decode(errors="replace")
        raise Fail(f"{method} {url}: HTTP {e.code}: {detail}") from None
    ctype = hdrs.get("Content-Type", hdrs.get("content-type", ""))
    text = raw.decode(errors="replace")
    if not text.strip():
        return hdrs, None, status
    if ctype.startswith("text/event-stream"):
        for line in text.splitlines():
            if line.startswith("data:"):
                msg = json.loads(line[5:].strip())
                if want_id is None or msg.get("id") == want_id:
                    return hdrs, msg, status
        raise Fail(f"{method} {url}: no answer in the SSE stream: {text[:300]}")
    return hdrs, json.loads(text), status


@dataclass
class Session:
    url: str
    tool: str
    token: str | None
    session_id: str | None

    def headers(self) -> dict[str, str]:
        h = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL,
        }
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL,
        "capabilities": {},
        "clientInfo": {"name": "aigw-bench", "version": "1"},
    },
}


def open_session(url: str, tool: str, token: str | None, timeout: float = 20) -> Session:
    """initialize + notifications/initialized + tools/list + one checked call."""
    s = Session(url, tool, token, None)
    init = INITIALIZE
    deadline = time.monotonic() + timeout
    while True:
        try:
            hdrs, msg, _ = http_call("POST", url, init, s.headers(), want_id=1)
            break
        except (Fail, OSError) as e:
            if time.monotonic() > deadline:
                raise Fail(f"initialize at {url}: {e}") from None
            time.sleep(0.25)
    if not isinstance(msg, dict) or "result" not in msg:
        raise Fail(f"initialize at {url}: {msg}")
    lower = {k.lower(): v for k, v in hdrs.items()}
    s.session_id = lower.get("mcp-session-id")
    http_call("POST", url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, s.headers())
    _, listed, _ = http_call(
        "POST", url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, s.headers(), want_id=2
    )
    names = [t.get("name") for t in (listed or {}).get("result", {}).get("tools", [])]
    if tool not in names:
        raise Fail(f"tools/list at {url} has no {tool!r}: {names}")
    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"message": "hello"}},
    }
    _, answer, _ = http_call("POST", url, call, s.headers(), want_id=3)
    content = (answer or {}).get("result", {}).get("content") or [{}]
    if content[0].get("text") != "hello":
        raise Fail(f"tools/call {tool} at {url}: {answer}")
    return s


# --------------------------------------------------------------------------
# targets


@dataclass
class Env:
    procs: Processes
    auth: Auth
    upstream_url: str
    upstream: Proc


@dataclass
class Target:
    name: str
    session: Session
    pids: list[int]  # roots whose process trees count for RSS
    note: str = ""


def start_direct(env: Env) -> Target:
    return Target(
        "direct",
        open_session(env.upstream_url, "echo", None),
        [env.upstream.pid],
        note="the reference upstream itself",
    )


def aigw_config(
    env: Env,
    port: int,
    backends: list[str] | None = None,
    inherited: bool = False,
    metrics_port: int | None = None,
) -> Path:
    """``backends``: their names, all at the reference upstream (default: one, ``bench``);
    ``inherited``: listen on the socket handed over the systemd way (see start_aigw);
    ``metrics_port``: serve the metrics there (None: ``metrics: off``; their default
    port would be one for every aigw of the run)."""
    secret = env.procs.workdir / "session.key"
    if not secret.exists():
        secret.write_bytes(secrets.token_bytes(32))
        secret.chmod(0o600)
    public = f"http://{HOST}:{port}"
    cfg = {
        "listen": ["systemd:domain=INET:index=0" if inherited else f"tcp:{port}:interface={HOST}"],
        "public_url": public,
        "mcp_path": "/mcp",
        "auth": {
            "issuer": env.auth.issuer,
            "jwks_uri": env.auth.jwks_uri,
            "audiences": [public + "/mcp"],
        },
        "backends": [{"name": n, "url": env.upstream_url} for n in backends or ["bench"]],
        "sessions": {"secret_file": str(secret)},
        "logging": {"format": "text", "level": "warn", "access_log": False},
        "metrics": {"listen": f"tcp:{metrics_port}:interface={HOST}"} if metrics_port else False,
    }
    path = env.procs.workdir / f"aigw-{port}{'-inherited' if inherited else ''}.yaml"
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
    return path


def start_aigw(
    env: Env,
    twistd: Path,
    name: str,
    workers: int = 1,
    backends: list[str] | None = None,
    metrics: bool = False,
) -> Target:
    """aigw under ``twistd`` (CPython or PyPy); ``backends`` as in ``aigw_config``;
    ``metrics``: with its Prometheus metrics on (one process only).

    ``workers`` > 1: that many aigw processes on one port, as systemd runs them
    with ``etc/systemd/aigw@.socket`` (``ReusePort=yes``): each gets its own listening
    socket bound with SO_REUSEPORT as fd 3 (``LISTEN_FDS``, ``LISTEN_FDNAMES``,
    ``LISTEN_PID``),
    the kernel spreads connections over them, and every process serves every
    session (sealed ids, one session key).  RSS adds up over the processes.
    """
    if not twistd.exists():
        raise Skip(f"{twistd} missing")
    port = free_port()
    argv = [str(twistd), "-n", "--pidfile=", "aigw", "--config"]
    procs: list[Proc] = []
    metrics_port = free_port() if metrics else None
    if workers == 1:
        config = aigw_config(env, port, backends, metrics_port=metrics_port)
        procs.append(env.procs.start(name, [*argv, str(config)]))
    else:
        config = aigw_config(env, port, backends, inherited=True)
        for index in range(workers):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((HOST, port))
            sock.listen(1024)
            fd = sock.fileno()
            # bash (dash takes one-digit fds only) puts the socket on fd 3 and
            # states its own pid, which twistd keeps (exec): systemd's protocol.
            move = "" if fd == 3 else f"exec 3<&{fd} {fd}<&-; "
            passing = "export LISTEN_FDS=1 LISTEN_FDNAMES=aigw LISTEN_PID=$$; "
            handover = move + passing + 'exec "$0" "$@"'
            procs.append(
                env.procs.start(
                    f"{name}-{index}",
                    ["bash", "-c", handover, *argv, str(config)],
                    pass_fds=(fd,),
                )
            )
            sock.close()
    for proc in procs:
        wait_port(proc, port, 60)
    for _ in range(4 * workers):  # each connection may reach another process
        wait_ready(procs[0], f"http://{HOST}:{port}/readyz", 30)
    url = f"http://{HOST}:{port}/mcp"
    token = env.auth.token(url)
    return Target(
        name,
        open_session(url, f"{(backends or ['bench'])[0]}__echo", token),
        [proc.pid for proc in procs],
        note=f"{twistd.parent.parent.name}, JWT"
        + (f", {workers} processes on one port (SO_REUSEPORT)" if workers > 1 else "")
        + (f", metrics on (GET http://{HOST}:{metrics_port}/metrics)" if metrics_port else ""),
    )


def pypy_twistd() -> Path:
    """bench/.venvs/pypy/bin/twistd, when PyPy could install aigw (make bench-setup)."""
    twistd = VENVS / "pypy" / "bin" / "twistd"
    if twistd.exists():
        return twistd
    note = VENVS / "pypy.skip"
    if note.exists():
        raise Skip(note.read_text().strip())
    raise Skip("no bench/.venvs/pypy (make bench-setup)")


def start_fastmcp(env: Env) -> Target:
    python = VENVS / "fastmcp" / "bin" / "python"
    if not python.exists():
        raise Skip("no bench/.venvs/fastmcp (make bench-setup)")
    port = free_port()
    url = f"http://{HOST}:{port}/mcp"
    proc = env.procs.start(
        "fastmcp",
        [
            str(python),
            str(BENCH / "peers" / "fastmcp_proxy.py"),
            "--port",
            str(port),
            "--upstream",
            env.upstream_url,
            "--issuer",
            env.auth.issuer,
            "--jwks-uri",
            env.auth.jwks_uri,
            "--audience",
            url,
        ],
        env={"FASTMCP_LOG_LEVEL": "WARNING"},
    )
    wait_port(proc, port, 60)
    return Target(
        "fastmcp",
        open_session(url, "echo", env.auth.token(url)),
        [proc.pid],
        note="JWTVerifier, one reused upstream session, JSON responses",
    )


def start_mcp_proxy(env: Env) -> Target:
    exe = VENVS / "mcp-proxy" / "bin" / "mcp-proxy"
    if not exe.exists():
        raise Skip("no bench/.venvs/mcp-proxy (make bench-setup)")
    port = free_port()
    proc = env.procs.start(
        "mcp-proxy",
        [
            str(exe),
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            "--pass-environment",
            "--",
            str(exe),
            "--transport",
            "streamablehttp",
            "--log-level",
            "WARNING",
            env.upstream_url,
        ],
    )
    wait_port(proc, port, 60)
    url = f"http://{HOST}:{port}/mcp"
    return Target(
        "mcp-proxy",
        open_session(url, "echo", None),
        [proc.pid],
        note="no auth; HTTP server mode -> stdio -> HTTP client mode (2 processes)",
    )


def start_row(env: Env, row: str) -> Target:
    if row == "direct":
        return start_direct(env)
    if row == "aigw":
        return start_aigw(env, ROOT / ".venv" / "bin" / "twistd", "aigw")
    if row == "aigw-metrics":
        return start_aigw(env, ROOT / ".venv" / "bin" / "twistd", "aigw-metrics", metrics=True)
    if row == "aigw-x2":
        return start_aigw(env, ROOT / ".venv" / "bin" / "twistd", "aigw-x2", workers=2)
    if row == "aigw-pypy":
        return start_aigw(env, pypy_twistd(), "aigw-pypy")
    if row == "fastmcp":
        return start_fastmcp(env)
    if row == "mcp-proxy":
        return start_mcp_proxy(env)
    raise SystemExit(f"unknown row {row!r}; known: {', '.join(ALL_ROWS)}")


# --------------------------------------------------------------------------
# load


@dataclass
class Point:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    raw: dict[str, Any]


def run_wrk(target: Target, conns: int, seconds: int, method: str = "tools/call") -> Point:
    """``method``: tools/call (the session's tool) or a method without params (tools/list)."""
    threads = max(1, min(conns, os.cpu_count() or 1))
    s = target.session
    env = dict(os.environ)
    env.update(
        {
            "MCP_SESSION_ID": s.session_id or "",
            "MCP_TOKEN": s.token or "",
            "MCP_TOOL": s.tool,
            "MCP_PROTOCOL": PROTOCOL,
            "MCP_METHOD": method,
        }
    )
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        s.url,
    ]
    try:
        out = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
            preexec_fn=_die_with_parent,
        )
    except subprocess.TimeoutExpired:
        raise Fail(f"wrk against {target.name} did not finish") from None
    for line in out.stdout.splitlines():
        if line.startswith("WRKRESULT "):
            raw = json.loads(line[len("WRKRESULT ") :])
            errors = sum(raw[k] for k in ERROR_KEYS)
            if raw["requests"] == 0:
                errors += 1
            return Point(raw["rps"], raw["p50_us"] / 1000, raw["p99_us"] / 1000, errors, raw)
    raise Fail(
        f"wrk against {target.name}: no result ({out.returncode}): "
        f"{out.stdout[-300:]} {out.stderr[-300:]}"
    )


@dataclass
class Row:
    name: str
    target: Target | None = None
    status: str = "ok"  # ok | skipped | FAILED
    reason: str = ""
    points: dict[int, list[Point]] = field(default_factory=dict)
    rss_mib: float | None = None

    def ok(self) -> bool:
        return self.status == "ok"

    def median(self, conns: int, attr: str) -> float | None:
        pts = self.points.get(conns) or []
        return statistics.median(getattr(p, attr) for p in pts) if pts else None


def fmt(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}"


def na(v: float | None, digits: int) -> str:
    return "na" if v is None else f"{v:.{digits}f}"


def machine() -> str:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
    # The interpreter matters: Debian's python3.11 (PGO, LTO, a static libpython) runs
    # aigw's calls 15-20% faster than a plain source build of the same version.
    python = f"Python {platform.python_version()} ({sys.base_prefix}/bin)"
    return f"{os.cpu_count()} CPUs, {cpu}, {mem} RAM, {python}"


def report(rows: list[Row], concs: list[int], args: argparse.Namespace, auth: Auth | None) -> str:
    lo, hi = min(concs), max(concs)
    by = {r.name: r for r in rows}
    direct = by.get("direct")
    d_rps = direct.median(hi, "rps") if direct and direct.ok() else None
    d_p50 = direct.median(lo, "p50_ms") if direct and direct.ok() else None
    peer_rps = [r.median(hi, "rps") for r in rows if r.name in PEERS and r.ok()]
    best_peer = max((v for v in peer_rps if v), default=None)

    head = [
        "row",
        f"rps c{lo}",
        f"p50 c{lo}",
        f"p99 c{lo}",
        f"rps c{hi}",
        f"p50 c{hi}",
        f"p99 c{hi}",
        "+p50 ms",
        "RSS MiB",
        "x direct",
        "x best peer",
        "status",
    ]
    table = [head]
    for r in rows:
        rps_hi = r.median(hi, "rps")
        p50_lo = r.median(lo, "p50_ms")
        table.append(
            [
                r.name,
                fmt(r.median(lo, "rps")),
                fmt(p50_lo, 2),
                fmt(r.median(lo, "p99_ms"), 2),
                fmt(rps_hi),
                fmt(r.median(hi, "p50_ms"), 2),
                fmt(r.median(hi, "p99_ms"), 2),
                fmt(p50_lo - d_p50, 2) if (p50_lo is not None and d_p50 is not None) else "-",
                fmt(r.rss_mib, 1),
                fmt(rps_hi / d_rps, 3) if (rps_hi and d_rps) else "-",
                fmt(rps_hi / best_peer, 2) if (rps_hi and best_peer) else "-",
                r.status + (f": {r.reason}" if r.reason else ""),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    lines = [
        f"# machine: {machine()}",
        f"# method: wrk + bench/wrk/mcp_call.lua, tools/call echo, {args.rounds} round(s) x "
        f"{args.duration}s per point, concurrency {lo} and {hi}, medians",
        "# latencies: ms, each request timed by the Lua script (wrk's own percentiles, "
        "corrected for coordinated omission, are in --json as wrk_p*_us)",
        f"# auth: {auth.kind if auth else '-'} (RS256 JWT, aud = each target's resource URL)",
    ]
    sources = {
        pt.raw.get("latency_source") for r in rows for pts in r.points.values() for pt in pts
    }
    if "wrk" in sources:
        lines.append("# WARNING: some latencies are wrk's (no LuaJIT FFI in this wrk)")
    for r in rows:
        if r.target and r.target.note:
            lines.append(f"# {r.name}: {r.target.note}")
    lines.append("")
    for row in table:
        pairs = enumerate(zip(row, widths, strict=False))
        cells = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs]
        lines.append("  ".join([*cells, row[-1]]))
    lines.append("")
    aigw = by.get("aigw")
    ok = aigw is not None and aigw.ok()
    rps32 = aigw.median(hi, "rps") if ok and aigw else None
    p50 = aigw.median(lo, "p50_ms") if ok and aigw else None
    added = p50 - d_p50 if (p50 is not None and d_p50 is not None) else None
    ratio = rps32 / best_peer if (rps32 and best_peer) else None
    metered = by.get("aigw-metrics")
    if metered is not None and metered.ok() and ok and aigw:
        m_rps32, m_p50 = metered.median(hi, "rps"), metered.median(lo, "p50_ms")
        rps_ratio = m_rps32 / rps32 if (m_rps32 and rps32) else None
        p50_ratio = m_p50 / p50 if (m_p50 and p50) else None
        lines.append(
            f"aigw-metrics: rps32={na(m_rps32, 0)} rps32_vs_aigw={na(rps_ratio, 3)} "
            f"p50_c{lo}_vs_aigw={na(p50_ratio, 3)}"
        )
    rss = aigw.rss_mib if ok and aigw else None
    doubled = by.get("aigw-x2")
    x2_rps32 = doubled.median(hi, "rps") if doubled is not None and doubled.ok() else None
    x2_ratio = x2_rps32 / rps32 if (x2_rps32 and rps32) else None
    lines.append(
        f"aigw: rps32={na(rps32, 0)} added_p50_ms={na(added, 2)} best_peer_ratio={na(ratio, 2)}"
        f" rss_mib={na(rss, 1)} x2_ratio={na(x2_ratio, 2)}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="aigw benchmark (see bench/run.py's docstring)")
    p.add_argument(
        "--rows", default=",".join(ALL_ROWS), help=f"comma-separated, from: {', '.join(ALL_ROWS)}"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=5, help="seconds of wrk per point")
    p.add_argument("--concurrency", default="1,32")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 2
    rows_asked = [r.strip() for r in args.rows.split(",") if r.strip()]
    for r in rows_asked:
        if r not in ALL_ROWS:
            p.error(f"unknown row {r!r}; known: {', '.join(ALL_ROWS)}")
    concs = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    rows = [Row(name) for name in rows_asked]

    def body(procs: Processes) -> bool:
        env = start_env(procs)
        for row in rows:
            try:
                row.target = start_row(env, row.name)
                # warm-up (JITs, connection pools, token caches), not measured
                run_wrk(row.target, max(concs), 1)
            except Skip as e:
                row.status, row.reason = "skipped", str(e)
            except Fail as e:
                lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
                row.status, row.reason = "FAILED", (lines[-1] if lines else "?")[:200]
                print(f"# {row.name} failed to start: {e}", file=sys.stderr)
        live = [r for r in rows if r.ok()]
        for rnd in range(args.rounds):
            order = live[rnd % len(live) :] + live[: rnd % len(live)] if live else []
            for row in order:
                for c in concs:
                    if not row.ok():
                        break
                    assert row.target is not None
                    try:
                        pt = run_wrk(row.target, c, args.duration)
                    except Fail as e:
                        row.status, row.reason = "FAILED", str(e)[:200]
                        break
                    row.points.setdefault(c, []).append(pt)
                    if pt.errors:
                        row.status = "FAILED"
                        row.reason = f"{pt.errors} errors at c{c}: " + ", ".join(
                            f"{k}={v}" for k, v in pt.raw.items() if k in ERROR_KEYS and v
                        )
                    print(
                        f"# round {rnd + 1} {row.name} c{c}: {pt.rps:.0f} req/s "
                        f"p50 {pt.p50_ms:.2f} ms p99 {pt.p99_ms:.2f} ms"
                        + (f" ERRORS {pt.errors}" if pt.errors else ""),
                        file=sys.stderr,
                    )
        for row in rows:
            if row.target:
                pids = [q for root in row.target.pids for q in process_tree(root)]
                row.rss_mib = sum(vm_hwm_kib(q) for q in pids) / 1024 or None
        print(report(rows, concs, args, env.auth))
        if args.json:
            args.json.write_text(
                json.dumps(
                    [
                        {
                            "row": r.name,
                            "status": r.status,
                            "reason": r.reason,
                            "rss_mib": r.rss_mib,
                            "points": {c: [pt.raw for pt in pts] for c, pts in r.points.items()},
                        }
                        for r in rows
                    ],
                    indent=2,
                )
            )
        return any(r.status == "FAILED" for r in rows)

    return guarded("aigw-bench-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
