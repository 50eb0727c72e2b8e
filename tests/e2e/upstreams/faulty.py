"""An MCP server that misbehaves on ``tools/call``, for tests/e2e/test_faults.py.

It is the unit tests' ``FakeUpstream`` (sessions, ``tools/list``) served by a
real Twisted reactor, with the answer to a ``tools/call`` chosen by the URL's
first path segment::

    /html/mcp      200 text/html, an nginx-style error page
    /plain/mcp     200 text/plain
    /garbage/mcp   200 application/json that is not JSON
    /hang/mcp      never answers (until aigw gives up and closes the connection)
    /close/mcp     closes the connection before answering
    /ok/mcp        answers like FakeUpstream
    /stale/mcp     answers like FakeUpstream, but closes unanswered a ``tools/list`` or
                   ``tools/call`` that comes on a connection which served a request
                   before, as a server whose idle timer fires as the request arrives
                   (prints ``SEEN <method>`` or ``STALE <method>``;
                   tests/e2e/test_keep_alive.py)
    /nohead/mcp    answers POSTs like FakeUpstream; takes a GET stream's request and
                   never sends its response head (prints ``STREAM nohead`` for each,
                   ``DROPPED nohead`` when aigw closes it; tests/e2e/test_stream_head.py)

Every ``tools/call`` whose connection aigw closed before an answer prints
``GONE <mode>``, every ``notifications/cancelled`` prints ``CANCELLED <mode>``,
on stdout, for the test to read.

    python -m tests.e2e.upstreams.faulty --port N
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from tests.e2e.upstreams import serve
from tests.unit.gateway.fake_upstream import FakeUpstream

HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class Faulty(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.upstream = FakeUpstream(tools=["boom"])

    def render_GET(self, request: Request) -> Any:
        if (request.postpath or [b""])[0] == b"nohead":
            print("STREAM nohead", flush=True)
            request.notifyFinish().addErrback(lambda _: print("DROPPED nohead", flush=True))
            return NOT_DONE_YET
        return self.upstream.render_GET(request)

    def render_DELETE(self, request: Request) -> Any:
        return self.upstream.render_DELETE(request)

    def render_POST(self, request: Request) -> Any:
        mode = (request.postpath or [b""])[0].decode() or "ok"
        data = request.content.read()
        request.content = io.BytesIO(data)
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        method = body.get("method") if isinstance(body, dict) else None
        if method == "notifications/cancelled":
            print(f"CANCELLED {mode}", flush=True)
        if mode == "stale":
            return self._stale(request, method)
        if method != "tools/call" or mode == "ok":
            return self.upstream.render_POST(request)
        if mode == "html":
            request.setHeader(b"content-type", b"text/html")
            return HTML
        if mode == "plain":
            request.setHeader(b"content-type", b"text/plain")
            return b"Internal error, please try again"
        if mode == "garbage":
            request.setHeader(b"content-type", b"application/json")
            return b'{"jsonrpc": "2.0", "id": '
        if mode == "close":
            request.channel.transport.abortConnection()  # type: ignore[union-attr]
            return NOT_DONE_YET
        request.notifyFinish().addErrback(lambda _: print(f"GONE {mode}", flush=True))
        return NOT_DONE_YET

    def _stale(self, request: Request, method: Any) -> Any:
        channel: Any = request.channel
        if getattr(channel, "served_one", False) and method in ("tools/list", "tools/call"):
            print(f"STALE {method}", flush=True)
            channel.transport.loseConnection()
            return NOT_DONE_YET
        channel.served_one = True
        print(f"SEEN {method}", flush=True)
        return self.upstream.render_POST(request)


if __name__ == "__main__":
    serve(Faulty())
