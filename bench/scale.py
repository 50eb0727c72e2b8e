"""aigw at scale: tools/list fan-out over backends, memory per session and per stream.

    .venv/bin/python bench/scale.py [--parts fanout,processes,sessions,streams]
        [--backends 1,5,20] [--processes 1,2,3] [--concurrency 1,32] [--duration 5] [--rounds 3]
        [--sessions 1000,5000] [--streams 100,500] [--stream-backends 1,5]
        [--quick] [--json FILE|-]

It reuses bench/run.py's pieces (processes, the authorization server and
tokens, ``bench/upstream.mjs``, aigw's config and ``twistd -n aigw``, ``wrk``
with ``bench/wrk/mcp_call.lua``); everything runs on 127.0.0.1, is bounded in
count and time, and is stopped on exit.  One reference upstream process
(``upstream.mjs --hold-streams``) serves every backend: the backends differ
by name only, each with its own connection pool in aigw.

* ``fanout``: aigw with 1, 5 and 20 backends; ``wrk`` POSTs ``tools/list``
  (every backend asked, replies merged) at each concurrency, and
  ``tools/call`` (one backend) with the fewest and the most backends.
  Medians over rounds, backend counts interleaved.
* ``processes``: 1, 2 and 3 aigw processes on one port (SO_REUSEPORT, as
  ``etc/systemd/aigw@.socket`` runs them: ``start_aigw(workers=N)``), one
  backend; ``wrk`` POSTs ``tools/call`` at each concurrency, process counts
  interleaved; the RSS column sums VmRSS over the processes after the rounds.
  What N processes on this machine's cores serve, and what each costs.
* ``sessions``: a fresh aigw per kind, then VmRSS after each cumulative step
  of N set-ups (after a settle): ``session`` = N initialize handshakes of one
  user (2025-11-25; the session id is sealed state, nothing is stored);
  ``session-users`` = the same, each by another user (token cache);
  ``stateless-users`` = N 2026-07-28 users, one ``tools/list`` each (token
  cache and the pooled upstream session of each user and backend).  Set-up
  traffic comes from a small asyncio client; it is never timed.
* ``streams``: a fresh aigw per kind and backend count, holding N open
  streams: ``get`` = the session's GET SSE stream (2025-11-25), ``listen`` =
  ``subscriptions/listen`` (2026-07-28); VmRSS, aigw's open fds and the
  upstream's open GET streams after each step, and again once every client
  stream is closed (what is left behind).

The output ends with one line:
    scale: list_c<hi>_x<max>=<ratio> session_kib=<n> get_stream_kib=<n> listen_stream_kib=<n>
(``na`` where not measured).  Exit status 1 when something failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# bench/ is on sys.path when this file runs as a script
from run import (
    ERROR_KEYS,
    INITIALIZE,
    PROTOCOL,
    Auth,
    Env,
    Fail,
    Point,
    Processes,
    Session,
    Target,
    fmt,
    guarded,
    http_json,
    machine,
    na,
    run_wrk,
    start_aigw,
    start_env,
    vm_kib,
)

MODERN = "2026-07-28"
TWISTD = Path(sys.executable).parent / "twistd"
SESSION_KINDS = ("session", "session-users", "stateless-users")
STREAM_KINDS = ("get", "listen")
PARTS = ("fanout", "processes", "sessions", "streams")
SETUP_CONNECTIONS = 16


def backend_names(count: int) -> list[str]:
    return [f"b{i:02d}" for i in range(1, count + 1)]


def load_average() -> str:
    """The 1-minute load average (others' work on the machine shows here)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


# --------------------------------------------------------------------------
# a small HTTP/1.1 client for set-up only (never timed)


class Conn:
    """One keep-alive connection to aigw."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> Conn:
        parts = urllib.parse.urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    def send(self, method: str, url: str, headers: dict[str, str], body: Any = None) -> None:
        parts = urllib.parse.urlsplit(url)
        data = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(data)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)

    async def head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        first, *rest = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in rest:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return int(first.split()[1]), headers

    async def body(self, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() != "chunked":
            return b""
        out = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return out
            out += chunk[:-2]

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: Any = None
    ) -> tuple[int, dict[str, str], bytes]:
        self.send(method, url, headers, body)
        status, got = await self.head()
        return status, got, await self.body(got)

    def close(self) -> None:
        self.writer.close()


def legacy_headers(token: str, session_id: str | None = None) -> dict[str, str]:
    return Session("", "", token, session_id).headers()


def modern_request(method: str, request_id: int, params: dict[str, Any]) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "aigw-bench-scale", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {**params, "_meta": meta},
    }


def modern_headers(token: str, method: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
        "Authorization": f"Bearer {token}",
    }


async def one_setup(conn: Conn, url: str, kind: str, token: str) -> None:
    """One session (initialize handshake) or one 2026-07-28 user's first request."""
    if kind == "stateless-users":
        status, _, raw = await conn.request(
            "POST", url, modern_headers(token, "tools/list"), modern_request("tools/list", 1, {})
        )
    else:
        status, got, raw = await conn.request("POST", url, legacy_headers(token), INITIALIZE)
        if status == 200 and got.get("mcp-session-id"):
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            await conn.request("POST", url, legacy_headers(token, got["mcp-session-id"]), note)
    if status != 200 or b'"result"' not in raw:
        raise Fail(f"{kind} set-up: HTTP {status}: {raw[:200]!r}")


async def set_up(url: str, kind: str, tokens: list[str]) -> None:
    """One set-up per token, over a few keep-alive connections."""
    todo = iter(tokens)

    async def worker() -> None:
        conn = await Conn.open(url)
        try:
            for token in todo:
                await one_setup(conn, url, kind, token)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(SETUP_CONNECTIONS)))


async def open_stream(url: str, kind: str, token: str, n: int) -> Conn:
    """An open client stream of its own user (aigw allows one GET stream per session and
    ``sessions.max_streams_per_user`` per user): its headers and first bytes are in,
    the rest waits.  A GET stream's session is opened on the same connection first."""
    conn = await Conn.open(url)
    if kind == "get":
        status, got, raw = await conn.request("POST", url, legacy_headers(token), INITIALIZE)
        session_id = got.get("mcp-session-id")
        if status != 200 or not session_id:
            raise Fail(f"get stream: initialize HTTP {status}: {raw[:200]!r}")
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await conn.request("POST", url, legacy_headers(token, session_id), note)
        headers = {
            "Accept": "text/event-stream",
            "MCP-Protocol-Version": PROTOCOL,
            "Mcp-Session-Id": session_id,
            "Authorization": f"Bearer {token}",
        }
        conn.send("GET", url, headers)
        marker = b"stream open"
    else:
        body = modern_request(
            "subscriptions/listen", n, {"notifications": {"toolsListChanged": True}}
        )
        conn.send("POST", url, modern_headers(token, "subscriptions/listen"), body)
        marker = b"acknowledged"
    status, _ = await conn.head()
    if status != 200:
        raise Fail(f"{kind} stream: HTTP {status}")
    seen = b""
    while marker not in seen:
        chunk = await conn.reader.read(4096)
        if not chunk:
            raise Fail(f"{kind} stream ended before {marker!r}")
        seen += chunk
    return conn


# --------------------------------------------------------------------------
# fan-out


@dataclass
class FanoutRow:
    backends: int
    method: str
    points: dict[int, list[Point]] = field(default_factory=dict)

    def median(self, conns: int, attr: str) -> float | None:
        pts = self.points.get(conns) or []
        return statistics.median(getattr(p, attr) for p in pts) if pts else None


def measure_fanout(
    env: Env, args: argparse.Namespace, concs: list[int], counts: list[int]
) -> list[FanoutRow]:
    targets: dict[int, Target] = {}
    for count in counts:
        targets[count] = start_aigw(env, TWISTD, f"aigw-{count}b", backends=backend_names(count))
        if args.warmup:
            run_wrk(targets[count], max(concs), args.warmup, "tools/list")  # not measured
    methods = [(c, "tools/list") for c in counts]
    methods += [(c, "tools/call") for c in sorted({min(counts), max(counts)})]
    rows = [FanoutRow(c, m) for c, m in methods]
    for rnd in range(args.rounds):
        shift = rnd % len(rows)
        for row in rows[shift:] + rows[:shift]:
            for conns in concs:
                pt = run_wrk(targets[row.backends], conns, args.duration, row.method)
                if pt.errors:
                    bad = {k: v for k, v in pt.raw.items() if k in ERROR_KEYS and v}
                    raise Fail(f"{row.method} x{row.backends} c{conns}: {pt.errors} errors {bad}")
                row.points.setdefault(conns, []).append(pt)
                print(
                    f"# round {rnd + 1} {row.method} x{row.backends} c{conns}: "
                    f"{pt.rps:.0f} req/s p50 {pt.p50_ms:.2f} ms p99 {pt.p99_ms:.2f} ms",
                    file=sys.stderr,
                )
    return rows


@dataclass
class ProcessRow:
    processes: int
    points: dict[int, list[Point]] = field(default_factory=dict)
    rss_kib: int = 0

    def median(self, conns: int, attr: str) -> float | None:
        pts = self.points.get(conns) or []
        return statistics.median(getattr(p, attr) for p in pts) if pts else None


def measure_processes(
    env: Env, args: argparse.Namespace, concs: list[int], counts: list[int]
) -> list[ProcessRow]:
    """``tools/call`` through 1, 2, ... aigw processes sharing one port."""
    targets = {n: start_aigw(env, TWISTD, f"aigw-{n}p", workers=n) for n in counts}
    for target in targets.values():
        if args.warmup:
            run_wrk(target, max(concs), args.warmup)  # not measured
    rows = [ProcessRow(n) for n in counts]
    for rnd in range(args.rounds):
        shift = rnd % len(rows)
        for row in rows[shift:] + rows[:shift]:
            for conns in concs:
                pt = run_wrk(targets[row.processes], conns, args.duration)
                if pt.errors:
                    bad = {k: v for k, v in pt.raw.items() if k in ERROR_KEYS and v}
                    raise Fail(f"{row.processes} processes c{conns}: {pt.errors} errors {bad}")
                row.points.setdefault(conns, []).append(pt)
                print(
                    f"# round {rnd + 1} tools/call x{row.processes} processes c{conns}: "
                    f"{pt.rps:.0f} req/s p50 {pt.p50_ms:.2f} ms p99 {pt.p99_ms:.2f} ms",
                    file=sys.stderr,
                )
    for row in rows:
        row.rss_kib = sum(vm_kib(pid, "VmRSS") for pid in targets[row.processes].pids)
    return rows


# --------------------------------------------------------------------------
# memory


@dataclass
class Step:
    kind: str
    backends: int
    count: int
    rss_kib: int
    upstream_rss_kib: int
    fds: int
    upstream_sessions: int
    upstream_streams: int
    closed: bool = False  # the step after every client stream closed

    def per_item_kib(self, base: Step) -> float | None:
        if self.closed or self.count == 0:
            return None
        return (self.rss_kib - base.rss_kib) / self.count


def upstream_stats(env: Env) -> dict[str, int]:
    parts = urllib.parse.urlsplit(env.upstream_url)
    return dict(http_json("GET", f"{parts.scheme}://{parts.netloc}/stats"))


def snapshot(
    env: Env, target: Target, kind: str, backends: int, count: int, settle: float, closed: bool
) -> Step:
    time.sleep(settle)
    pid = target.pids[0]
    stats = upstream_stats(env)
    step = Step(
        kind,
        backends,
        count,
        vm_kib(pid, "VmRSS"),
        vm_kib(env.upstream.pid, "VmRSS"),
        open_fds(pid),
        stats["sessions"],
        stats["open_streams"],
        closed,
    )
    print(
        f"# {kind} x{backends} {'closed' if closed else count}: "
        f"aigw {step.rss_kib / 1024:.1f} MiB, {step.fds} fds; upstream "
        f"{step.upstream_rss_kib / 1024:.1f} MiB, {step.upstream_sessions} sessions, "
        f"{step.upstream_streams} streams",
        file=sys.stderr,
    )
    return step


def warm(env: Env, target: Target) -> None:
    """Every code path the steps use runs once before the baseline."""
    token = env.auth.token(target.session.url, subject="warm-up")
    asyncio.run(set_up(target.session.url, "stateless-users", [token] * SETUP_CONNECTIONS))
    asyncio.run(set_up(target.session.url, "session", [token] * SETUP_CONNECTIONS))


def measure_sessions(env: Env, kind: str, counts: list[int], settle: float) -> list[Step]:
    target = start_aigw(env, TWISTD, f"aigw-{kind}", backends=backend_names(1))
    warm(env, target)
    url = target.session.url
    steps = [snapshot(env, target, kind, 1, 0, settle, False)]
    done = 0
    for count in counts:
        if kind == "session":
            tokens = [target.session.token or ""] * (count - done)
        else:
            tokens = [env.auth.token(url, subject=f"user-{i}") for i in range(done, count)]
        asyncio.run(set_up(url, kind, tokens))
        done = count
        steps.append(snapshot(env, target, kind, 1, count, settle, False))
    stop(env, target)
    return steps


def measure_streams(
    env: Env, kind: str, backends: int, counts: list[int], settle: float
) -> list[Step]:
    target = start_aigw(env, TWISTD, f"aigw-{kind}-{backends}b", backends=backend_names(backends))
    warm(env, target)
    url = target.session.url

    async def hold() -> list[Step]:
        steps = [snapshot(env, target, kind, backends, 0, settle, False)]
        conns: list[Conn] = []
        try:
            for count in counts:
                while len(conns) < count:
                    batch = min(50, count - len(conns))
                    conns += await asyncio.gather(
                        *(
                            open_stream(
                                url,
                                kind,
                                env.auth.token(url, subject=f"stream-{len(conns) + i}"),
                                len(conns) + i,
                            )
                            for i in range(batch)
                        )
                    )
                await asyncio.sleep(0)
                steps.append(snapshot(env, target, kind, backends, count, settle, False))
        finally:
            for conn in conns:
                conn.close()
            await asyncio.sleep(0.1)
        steps.append(snapshot(env, target, kind, backends, len(conns), settle * 2, True))
        return steps

    steps = asyncio.run(hold())
    stop(env, target)
    return steps


def stop(env: Env, target: Target) -> None:
    """End one aigw now (its port and memory are not needed any more)."""
    for proc in env.procs.procs:
        if proc.pid == target.pids[0]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(Exception):
                proc.popen.wait(timeout=10)


# --------------------------------------------------------------------------
# report


LABELS = {
    "session": "sessions, 1 user (2025-11-25)",
    "session-users": "sessions, 1 user each",
    "stateless-users": "2026-07-28 users, 1 request each",
    "get": "GET streams (2025-11-25)",
    "listen": "subscriptions/listen streams",
}


def table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]


def fanout_lines(rows: list[FanoutRow], concs: list[int]) -> list[str]:
    lo, hi = min(concs), max(concs)
    base = {r.method: r for r in sorted(rows, key=lambda r: r.backends, reverse=True)}
    out = [["backends", "method"]]
    for c in concs:
        out[0] += [f"rps c{c}", f"p50 c{c}", f"p99 c{c}"]
    out[0] += [f"x1 rps c{hi}", f"x1 p50 c{lo}"]
    for r in rows:
        first = base[r.method]
        line = [str(r.backends), r.method]
        for c in concs:
            line += [
                fmt(r.median(c, "rps")),
                fmt(r.median(c, "p50_ms"), 2),
                fmt(r.median(c, "p99_ms"), 2),
            ]
        rps, rps1 = r.median(hi, "rps"), first.median(hi, "rps")
        p50, p501 = r.median(lo, "p50_ms"), first.median(lo, "p50_ms")
        line += [
            fmt(rps / rps1, 2) if rps and rps1 else "-",
            fmt(p50 / p501, 2) if p50 and p501 else "-",
        ]
        out.append(line)
    return table(out)


def process_lines(rows: list[ProcessRow], concs: list[int]) -> list[str]:
    hi = max(concs)
    first = rows[0]
    out = [["processes"]]
    for c in concs:
        out[0] += [f"rps c{c}", f"p50 c{c}", f"p99 c{c}"]
    out[0] += [f"x{first.processes} rps c{hi}", f"rps c{hi} per process", "RSS MiB"]
    for r in rows:
        line = [str(r.processes)]
        for c in concs:
            line += [
                fmt(r.median(c, "rps")),
                fmt(r.median(c, "p50_ms"), 2),
                fmt(r.median(c, "p99_ms"), 2),
            ]
        rps, rps1 = r.median(hi, "rps"), first.median(hi, "rps")
        line += [
            fmt(rps / rps1, 2) if rps and rps1 else "-",
            fmt(rps / r.processes) if rps else "-",
            fmt(r.rss_kib / 1024, 1),
        ]
        out.append(line)
    return table(out)


def memory_lines(groups: list[list[Step]]) -> list[str]:
    out = [
        [
            "what",
            "backends",
            "count",
            "RSS MiB",
            "+KiB",
            "KiB/each",
            "fds",
            "up RSS MiB",
            "up sessions",
            "up streams",
        ]
    ]
    for steps in groups:
        base = steps[0]
        for s in steps:
            each = s.per_item_kib(base)
            out.append(
                [
                    LABELS[s.kind],
                    str(s.backends),
                    f"{s.count} closed" if s.closed else str(s.count),
                    fmt(s.rss_kib / 1024, 1),
                    str(s.rss_kib - base.rss_kib),
                    fmt(each, 2),
                    str(s.fds),
                    fmt(s.upstream_rss_kib / 1024, 1),
                    str(s.upstream_sessions),
                    str(s.upstream_streams),
                ]
            )
    return table(out)


def per_item(groups: list[list[Step]], kind: str) -> float | None:
    """KiB per item at the largest count of ``kind`` with the fewest backends."""
    for steps in groups:
        if steps[0].kind == kind:
            last = [s for s in steps if not s.closed][-1]
            return last.per_item_kib(steps[0])
    return None


def report(
    args: argparse.Namespace,
    auth: Auth | None,
    concs: list[int],
    fanout: list[FanoutRow],
    memory: list[list[Step]],
    processes: list[ProcessRow] | None = None,
) -> str:
    lines = [
        f"# machine: {machine()}",
        f"# auth: {auth.kind if auth else '-'}; one reference upstream process "
        "(bench/upstream.mjs --hold-streams) for every backend",
        f"# 1-minute load average: {args.load_before} at the start, {load_average()} at the end",
    ]
    if fanout:
        lines += [
            "",
            f"# fan-out: wrk + bench/wrk/mcp_call.lua, {args.rounds} round(s) x {args.duration}s "
            f"per point, medians; latencies in ms; x1 = against the fewest backends",
            *fanout_lines(fanout, concs),
        ]
    if processes:
        lines += [
            "",
            f"# processes: N aigw processes on one port (SO_REUSEPORT), one backend, tools/call; "
            f"{args.rounds} round(s) x {args.duration}s per point, medians; RSS summed over "
            "the processes",
            *process_lines(processes, concs),
        ]
    if memory:
        lines += [
            "",
            f"# memory: aigw VmRSS after each cumulative step (settle {args.settle}s), fresh aigw "
            "per group; +KiB and KiB/each against the group's 0 row; fds = aigw's open fds; "
            "up = the upstream process",
            *memory_lines(memory),
        ]
    hi = max(concs)
    ratio = None
    rows = [r for r in fanout if r.method == "tools/list"]
    if len(rows) > 1:
        first, last = rows[0].median(hi, "rps"), rows[-1].median(hi, "rps")
        ratio = last / first if first and last else None
    top = rows[-1].backends if rows else 0
    lines += [
        "",
        f"scale: list_c{hi}_x{top}={na(ratio, 2)} session_kib={na(per_item(memory, 'session'), 2)} "
        f"get_stream_kib={na(per_item(memory, 'get'), 2)} "
        f"listen_stream_kib={na(per_item(memory, 'listen'), 2)}",
    ]
    return "\n".join(lines)


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="aigw at scale (see bench/scale.py's docstring)")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--backends", default="1,5,20", help="backend counts of the fan-out")
    p.add_argument("--processes", default="1,2,3", help="process counts on one port")
    p.add_argument("--concurrency", default="1,32")
    p.add_argument("--duration", type=int, default=5, help="seconds of wrk per point")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sessions", default="1000,5000", help="cumulative steps of set-ups")
    p.add_argument("--session-kinds", default=",".join(SESSION_KINDS))
    p.add_argument("--streams", default="100,500", help="cumulative steps of open streams")
    p.add_argument("--stream-backends", default="1,5")
    p.add_argument("--warmup", type=int, default=1, help="seconds of wrk before measuring")
    p.add_argument("--settle", type=float, default=1.0, help="seconds before reading VmRSS")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny counts, 1 s points")
    p.add_argument("--json", help="also write the raw results to this file ('-': stdout only)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.backends, args.concurrency, args.duration, args.rounds = "1,2", "1,4", 1, 1
        args.processes = "1,2"
        args.sessions, args.streams, args.stream_backends = "20", "10", "1"
        args.session_kinds, args.settle, args.warmup = "session", 0.2, 0
    parts = set(args.parts.split(","))
    kinds = [k for k in args.session_kinds.split(",") if k]
    for k in kinds:
        if k not in SESSION_KINDS:
            p.error(f"unknown session kind {k!r}; known: {', '.join(SESSION_KINDS)}")
    for part in parts:
        if part not in PARTS:
            p.error(f"unknown part {part!r}; known: {', '.join(PARTS)}")
    concs = ints(args.concurrency)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if not TWISTD.exists():
        print(f"{TWISTD} missing: run with the virtualenv's python", file=sys.stderr)
        return 2
    fd_limit = raise_fd_limit()
    needed = 2 * max(ints(args.streams) or [0]) + 100
    if "streams" in parts and fd_limit < needed:
        print(f"# fd limit {fd_limit} < {needed}: fewer streams", file=sys.stderr)
        args.streams = ",".join(str(min(n, (fd_limit - 100) // 2)) for n in ints(args.streams))

    fanout: list[FanoutRow] = []
    processes: list[ProcessRow] = []
    memory: list[list[Step]] = []

    args.load_before = load_average()

    def body(procs: Processes) -> bool:
        env = start_env(procs, "--hold-streams")
        try:
            if "fanout" in parts:
                fanout.extend(measure_fanout(env, args, concs, ints(args.backends)))
            if "processes" in parts:
                processes.extend(measure_processes(env, args, concs, ints(args.processes)))
            for kind in kinds if "sessions" in parts else []:
                memory.append(measure_sessions(env, kind, ints(args.sessions), args.settle))
            for kind in STREAM_KINDS if "streams" in parts else []:
                for count in ints(args.stream_backends):
                    memory.append(
                        measure_streams(env, kind, count, ints(args.streams), args.settle)
                    )
        except (OSError, asyncio.IncompleteReadError) as e:
            raise Fail(f"{type(e).__name__}: {e}") from None
        raw = {
            "machine": machine(),
            "load_average": [args.load_before, load_average()],
            "fanout": [
                {
                    "backends": r.backends,
                    "method": r.method,
                    "points": {c: [pt.raw for pt in pts] for c, pts in r.points.items()},
                }
                for r in fanout
            ],
            "processes": [
                {
                    "processes": r.processes,
                    "rss_kib": r.rss_kib,
                    "points": {c: [pt.raw for pt in pts] for c, pts in r.points.items()},
                }
                for r in processes
            ],
            "memory": [[asdict(s) for s in steps] for steps in memory],
        }
        if args.json == "-":
            print(json.dumps(raw, indent=2))
            return False
        print(report(args, env.auth, concs, fanout, memory, processes))
        if args.json:
            Path(args.json).write_text(json.dumps(raw, indent=2))
        return False

    return guarded("aigw-scale-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
