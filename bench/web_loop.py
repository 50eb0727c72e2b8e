"""Twisted's side of a call alone: CPU time per request through aigw's ``BoundedSite`` on
the real epoll reactor, in one process, for several aigw trees alternated.

``bench/pair.py`` times whole proxied calls in separate processes, and on a shared
machine its rounds move more than a few percent of change.  This keeps what the
server side of a call costs (Twisted's HTTP channel and request, aigw's channel, its
``Deadline``s, the writes through ``aigw/tcp_writes.py``, the reactor's dispatch and
timers) and leaves the rest out: a leaf resource answers a fixed JSON body, and a
client in the same process sends the next request (the head of an MCP ``tools/call``)
once the answer is in, as ``wrk -c1`` does.  CPU time (``time.process_time``) per
request, the least of ``--runs`` runs per tree, each tree in its own interpreter,
trees alternated ``--rounds`` times.  Usage::

    git archive main | tar -x -C /tmp/main-tree
    python bench/web_loop.py main=/tmp/main-tree branch=.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BODY = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "x" * 40}]}}
).encode()
REQUEST_BODY = (
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
    b'"params":{"name":"bench__echo","arguments":{"text":"hi"}}}'
)
REQUEST = (
    b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789\r\n"
    b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
    b"Mcp-Session-Id: 0123456789abcdef0123456789abcdef\r\n"
    b"MCP-Protocol-Version: 2025-11-25\r\n"
    b"Content-Length: %d\r\n\r\n" % len(REQUEST_BODY) + REQUEST_BODY
)


def measure(requests: int, runs: int) -> float:
    """In this interpreter (aigw from PYTHONPATH): the least CPU µs per request."""
    from twisted.internet import epollreactor

    epollreactor.install()  # type: ignore[no-untyped-call]
    from twisted.internet import protocol, reactor
    from twisted.web.resource import Resource

    from aigw.config import ServerConfig
    from aigw.web.server import BoundedSite

    class Leaf(Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> bytes:
            request.content.read()
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(b"Content-Length", b"%d" % len(BODY))
            return BODY

    results: list[float] = []

    class Client(protocol.Protocol):
        def connectionMade(self) -> None:
            self.received = b""
            self.left = 0
            self.started = 0.0
            self.next_run()

        def next_run(self) -> None:
            if len(results) == runs:
                reactor.stop()  # type: ignore[attr-defined]
                return
            self.left = requests
            self.started = time.process_time()
            self.transport.write(REQUEST)  # type: ignore[union-attr]

        def dataReceived(self, data: bytes) -> None:
            self.received += data
            if not self.received.endswith(BODY):
                return
            self.received = b""
            self.left -= 1
            if self.left:
                self.transport.write(REQUEST)  # type: ignore[union-attr]
                return
            results.append((time.process_time() - self.started) / requests)
            reactor.callLater(0, self.next_run)  # type: ignore[attr-defined]

    site = BoundedSite(Leaf(), ServerConfig(), reactor, access_log=False)  # type: ignore[arg-type]
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    client = protocol.ClientCreator(reactor, Client)  # type: ignore[no-untyped-call]
    client.connectTCP("127.0.0.1", port.getHost().port)
    reactor.run()  # type: ignore[attr-defined]
    return 1e6 * min(results)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=7, help="runs per tree and round (least kept)")
    p.add_argument("--requests", type=int, default=1500, help="requests per run")
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("trees", nargs="*", help="name=path of an aigw source tree")
    args = p.parse_args(argv)
    if args.measure:
        print(measure(args.requests, args.runs))
        return 0
    trees = [t.split("=", 1) for t in args.trees]
    seen: dict[str, list[float]] = {name: [] for name, _ in trees}
    command = [sys.executable, __file__, "--measure", f"--runs={args.runs}"]
    command.append(f"--requests={args.requests}")
    print(f"# load average at the start: {os.getloadavg()}", flush=True)
    for index in range(args.rounds):
        order = trees if index % 2 == 0 else trees[::-1]
        for name, tree in order:
            out = subprocess.run(
                command,
                env={**os.environ, "PYTHONPATH": str(Path(tree).resolve())},
                cwd="/",
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            seen[name].append(float(out))
        line = ", ".join(f"{name} {seen[name][-1]:.1f}" for name, _ in trees)
        print(f"round {index + 1}: CPU µs per request {line}", flush=True)
    for name, _ in trees:
        values = seen[name]
        print(f"{name}: least={min(values):.1f} median={statistics.median(values):.1f}")
    print(f"# load average at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
