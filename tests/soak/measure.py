"""The soak's pure parts: its settings, what counts as a failed request, the figures and
the verdict.  No I/O but reading ``/proc``; the unit tests drive everything else here.

A request fails when its answer is not the one MCP prescribes: another HTTP status, a
JSON-RPC error, no JSON-RPC response with the request's id, or a tool result with
``isError`` (basic/transports "Sending Messages to the Server"; server/tools "Error
Handling").  The criteria of issue 16 item 7: no failed request, RSS at the end within
``RSS_TOLERANCE_PCT`` of RSS after the warm-up, and the open file descriptors back to
the baseline taken before the first client.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: issue 16 item 7: "memory at the end within 5% of memory after warm-up".
RSS_TOLERANCE_PCT = 5.0
#: How many failures are kept whole to be shown (every one is counted).
SAMPLES = 5


@dataclass(frozen=True)
class Settings:
    """What to run: ``SOAK_SECONDS`` of ``SOAK_CLIENTS`` clients; RSS is taken
    ``SOAK_WARMUP`` seconds in (at most a third of the run), and the end waits at most
    ``SOAK_SETTLE`` seconds for the file descriptors to go back to the baseline."""

    seconds: float = 60.0
    clients: int = 50
    warmup: float = 10.0
    settle: float = 15.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """The settings from ``SOAK_*`` variables; ValueError naming a bad one."""
        seconds = _positive(environ, "SOAK_SECONDS", cls.seconds)
        clients = int(_positive(environ, "SOAK_CLIENTS", cls.clients, integer=True))
        warmup = _positive(environ, "SOAK_WARMUP", cls.warmup)
        settle = _positive(environ, "SOAK_SETTLE", cls.settle)
        return cls(seconds, clients, min(warmup, seconds / 3), settle)


def _positive(
    environ: Mapping[str, str], name: str, default: float, integer: bool = False
) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a positive integer" if integer else "a positive number of seconds"
        raise ValueError(f"{name}={raw!r}: not {kind}") from None
    if not value > 0:
        raise ValueError(f"{name}={raw!r}: must be greater than 0")
    return value


# -- answers ----------------------------------------------------------------------------


def sse_messages(body: bytes) -> list[Any]:
    """The JSON ``data`` of each event of an SSE body (WHATWG HTML "Server-sent events":
    data lines joined by LF, events ended by an empty line); events without data
    (aigw's keep-alive comments, ids alone) are skipped, undecodable data kept as text."""
    out: list[Any] = []
    data: list[str] = []
    for raw in [*body.decode("utf-8", "replace").replace("\r\n", "\n").split("\n"), ""]:
        if raw == "":
            if data:
                text = "\n".join(data)
                try:
                    out.append(json.loads(text))
                except ValueError:
                    out.append(text)
                data = []
        elif raw.startswith("data:"):
            value = raw[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    return out


def response_problem(
    status: int, content_type: str, body: bytes, request_id: int, tool_call: bool = False
) -> str | None:
    """None when ``body`` carries the JSON-RPC result of ``request_id`` with HTTP 200;
    else what is wrong, as a short sample for the report."""
    if status != 200:
        return f"HTTP {status}: {excerpt(body)}"
    if content_type.split(";")[0].strip().lower() == "text/event-stream":
        messages = sse_messages(body)
    else:
        try:
            messages = [json.loads(body)]
        except ValueError:
            return f"not JSON ({content_type or 'no content type'}): {excerpt(body)}"
    answer = next(
        (
            m
            for m in messages
            if isinstance(m, dict) and m.get("id") == request_id and "method" not in m
        ),
        None,
    )
    if answer is None:
        return f"no JSON-RPC response with id {request_id}: {excerpt(body)}"
    if "error" in answer:
        return f"JSON-RPC error {json.dumps(answer['error'])[:300]}"
    result = answer.get("result")
    if not isinstance(result, dict):
        return f"no result object: {excerpt(body)}"
    if tool_call and result.get("isError"):
        return f"tool error {json.dumps(result)[:300]}"
    return None


def status_problem(status: int, expected: tuple[int, ...], body: bytes) -> str | None:
    """None when ``status`` is one of ``expected`` (202 for a notification, 204 for a
    DELETE, 200 for a stream); else the sample."""
    return None if status in expected else f"HTTP {status}: {excerpt(body)}"


def excerpt(body: bytes, limit: int = 300) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return text + ("…" if len(body) > limit else "")


# -- the count --------------------------------------------------------------------------


@dataclass
class Tally:
    """Requests sent and failed, by kind (``initialize``, ``tools/call``, ``GET stream``…),
    with the first few failures kept whole."""

    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def record(self, kind: str, problem: str | None) -> None:
        self.sent[kind] += 1
        if problem is not None:
            self.failed[kind] += 1
            if len(self.samples) < SAMPLES:
                self.samples.append(f"{kind}: {problem}")

    def fail(self, kind: str, problem: str) -> None:
        """A request already counted turned out to fail (a stream that broke later)."""
        self.sent[kind] -= 1
        self.record(kind, problem)

    @property
    def requests(self) -> int:
        return sum(self.sent.values())

    @property
    def failures(self) -> int:
        return sum(self.failed.values())


# -- the process ------------------------------------------------------------------------


def status_kib(status_text: str, name: str) -> int:
    """A ``/proc/<pid>/status`` size in KiB (``VmRSS``, ``VmHWM``); 0 when absent."""
    for line in status_text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    """The resident set size of ``pid`` now (proc(5), ``VmRSS``)."""
    return status_kib(Path(f"/proc/{pid}/status").read_text(), "VmRSS")


def open_fds(pid: int) -> int:
    """How many file descriptors ``pid`` holds open (``/proc/<pid>/fd``)."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def fd_kind(target: str) -> str:
    """What a ``/proc/<pid>/fd`` link points at, without the inode: ``socket``,
    ``pipe``, ``anon_inode:[eventpoll]``, or the file's path."""
    for kind in ("socket", "pipe"):
        if target.startswith(kind + ":["):
            return kind
    return target


def fd_kinds(pid: int) -> Counter[str]:
    """The open file descriptors of ``pid`` by kind, to say what was left open."""
    out: Counter[str] = Counter()
    for link in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out[fd_kind(os.readlink(link))] += 1
        except OSError:
            continue  # closed while listed
    return out


# -- the verdict ------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    requests: int
    failed: int
    rss_warm_kib: int
    rss_end_kib: int
    fds_baseline: int
    fds_end: int

    @property
    def rss_growth_pct(self) -> float:
        """RSS at the end against RSS after the warm-up, in percent (negative: it shrank)."""
        if self.rss_warm_kib <= 0:
            return 0.0
        return (self.rss_end_kib - self.rss_warm_kib) * 100.0 / self.rss_warm_kib

    @property
    def fds_delta(self) -> int:
        return self.fds_end - self.fds_baseline

    def closing_line(self) -> str:
        """The contract of issue 16 item 7."""
        return (
            f"soak: requests={self.requests} failed={self.failed} "
            f"rss_growth_pct={self.rss_growth_pct:.1f} fds_delta={self.fds_delta}"
        )

    def unmet(self) -> list[str]:
        """Each criterion not met, said in words (empty: the soak passed)."""
        out = []
        if self.requests == 0:
            out.append("no request was sent")
        if self.failed:
            out.append(f"{self.failed} failed requests")
        if self.rss_growth_pct > RSS_TOLERANCE_PCT:
            out.append(
                f"RSS grew {self.rss_growth_pct:.1f}% after the warm-up "
                f"({self.rss_warm_kib} -> {self.rss_end_kib} KiB; at most {RSS_TOLERANCE_PCT:g}%)"
            )
        if self.fds_delta > 0:
            out.append(
                f"{self.fds_delta} file descriptors more than before the clients "
                f"({self.fds_baseline} -> {self.fds_end})"
            )
        return out
