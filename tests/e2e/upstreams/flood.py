"""An MCP server that sends a lot, for tests/e2e/test_slow_peers.py (issue 16 item 4).

The unit tests' ``FakeUpstream`` (sessions, ``tools/list``) served by a real
Twisted reactor, with these tools and streams:

    tools/call flood {"bytes": N}   an SSE reply: progress notifications of 8 KiB
                                    each, N bytes of them, then the result
    tools/call endless_event        an SSE reply whose one event never ends
    tools/call endless_json         a JSON reply (chunked) that never ends
    GET /pour/mcp                   the session's stream: notifications of 8 KiB,
                                    without end
    GET /quiet/mcp                  the session's stream: open, and nothing on it

What it writes is paced by its own socket (a push producer): the server sends as
fast as aigw reads, so what aigw does not read stays in the kernel's buffers
and this server's, never in aigw.  Each ``flood`` prints ``SENT <bytes>`` when
it ends, for the test to read.

    python -m tests.e2e.upstreams.flood --port N
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from typing import Any

from twisted.internet import reactor
from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from tests.e2e.upstreams import serve
from tests.unit.gateway.fake_upstream import FakeUpstream, sse

CHUNK = 8 * 1024


def _progress(total: int | None) -> Iterator[bytes]:
    """Progress notifications of about ``CHUNK`` bytes each, ``total`` bytes (None: forever)."""
    sent = 0
    number = 0
    while total is None or sent < total:
        number += 1
        message = {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": {"n": number, "pad": "x" * CHUNK}},
        }
        event = sse(message)
        sent += len(event)
        yield event


@implementer(IPushProducer)
class Pour:
    """Writes ``chunks`` to ``request`` as fast as its socket takes them; then ``last``."""

    def __init__(self, request: Request, chunks: Iterator[bytes], last: bytes | None) -> None:
        self.request = request
        self.chunks = chunks
        self.last = last
        self.sent = 0
        self.paused = False
        self.stopped = False
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._gone)
        reactor.callLater(0, self.resumeProducing)  # type: ignore[attr-defined]

    def _gone(self, _: object) -> None:
        self.stopped = True

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and not self.stopped:
            chunk = next(self.chunks, None)
            if chunk is None:
                self.stopped = True
                self.request.unregisterProducer()
                if self.last is not None:
                    self.request.write(self.last)
                self.request.finish()
                print(f"SENT {self.sent}", flush=True)
                return
            self.sent += len(chunk)
            self.request.write(chunk)

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.stopped = True


class Flood(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.upstream = FakeUpstream(tools=["flood", "endless_event", "endless_json"])
        self.upstream.get_status = 200

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"content-type", b"text/event-stream")
        if (request.postpath or [b""])[0] == b"pour":
            Pour(request, _progress(None), None)
        else:
            request.write(b": open\n\n")
        return NOT_DONE_YET

    def render_DELETE(self, request: Request) -> Any:
        return self.upstream.render_DELETE(request)

    def render_POST(self, request: Request) -> Any:
        data = request.content.read()
        request.content = io.BytesIO(data)
        body = json.loads(data)
        if body.get("method") != "tools/call":
            self.upstream.received.clear()  # thousands of sessions: keep nothing
            return self.upstream.render_POST(request)
        params = body.get("params") or {}
        name = params.get("name")
        if name == "flood":
            request.setHeader(b"content-type", b"text/event-stream")
            size = int((params.get("arguments") or {}).get("bytes", 0))
            result = {"content": [{"type": "text", "text": "flooded"}]}
            last = sse({"jsonrpc": "2.0", "id": body["id"], "result": result})
            Pour(request, _progress(size), last)
            return NOT_DONE_YET
        if name == "endless_event":
            request.setHeader(b"content-type", b"text/event-stream")
            Pour(request, itertools.chain([b"data: "], itertools.repeat(b"x" * CHUNK)), None)
            return NOT_DONE_YET
        if name == "endless_json":
            request.setHeader(b"content-type", b"application/json")
            opening = b'{"jsonrpc": "2.0", "id": %d, "result": {"content": [' % body["id"]
            item = b'{"type": "text", "text": "' + b"y" * CHUNK + b'"},'
            Pour(request, itertools.chain([opening], itertools.repeat(item)), None)
            return NOT_DONE_YET
        return self.upstream.render_POST(request)


if __name__ == "__main__":
    serve(Flood())
