"""An MCP server whose streams and replies are built to hurt its client, for
tests/e2e/test_hostile_streams.py (docs/security.md "Backends' streams and replies").

Hand-written (no SDK server sends malformed SSE or ids) and served by a real Twisted
reactor, as ``flood.py`` is.  One tool, ``hello``.  It sends:

* on the reply of ``initialize`` and of ``tools/list`` (requests aigw makes itself),
  before the answer: ``FLOOD`` pings and ``FLOOD`` ``roots/list`` requests, with ids
  that repeat, are objects, are 100 kB strings, or nest 1000 arrays deep, a batch
  nested 1000 deep, a 1 MB ``notifications/message``, progress with an object token,
  ``notifications/cancelled`` for ids aigw never sent, a notification whose params nest
  1000 deep, ``FLOOD`` ``list_changed``;
* every answer aigw POSTs back (pongs, refusals) is refused with 500, or held
  unanswered (every other one), until aigw gives up;
* on its GET stream, in turn: (1) 200 SSE with comment lines, priming events (ids and
  empty data) by the thousand, ids with NUL or invalid UTF-8, a new id on every event,
  then an id of 100 kB that stays the stream's last, ``retry`` of garbage and of 40
  digits, events named other than ``message``, data nested 1000 deep, then one valid
  ``notifications/message`` (``"after the garbage"``) and the end of the stream; (2) 200 with
  ``application/json``; (3) 409.  Then again from (1).

``GET /stats`` answers what it saw: ``{"gets": N, "answers": N, "longest_resume": N}``
(the longest ``Last-Event-ID`` a GET came with, in bytes).

    python -m tests.e2e.upstreams.hostile_streams --port N
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from tests.e2e.upstreams import serve

FLOOD = 2000
DEEP = 1000
#: The last words of each GET stream: what a client must still receive.
AFTER_THE_GARBAGE = "after the garbage"


def _event(data: bytes, *fields: bytes) -> bytes:
    return b"".join(field + b"\n" for field in fields) + b"data: " + data + b"\n\n"


def _message(message: Any) -> bytes:
    return _event(json.dumps(message).encode())


def _deep(inner: bytes = b"") -> bytes:
    return b"[" * DEEP + inner + b"]" * DEEP


def _reply_flood() -> Iterator[bytes]:
    """What precedes the answer on the reply of one of aigw's own requests."""
    for n in range(FLOOD):
        yield _message({"jsonrpc": "2.0", "id": n % 7, "method": "ping"})  # ids repeat
    ids: list[Any] = [{"an": "object"}, 5, 5, None, True, 2.5]
    for n in range(FLOOD):
        yield _message({"jsonrpc": "2.0", "id": ids[n % len(ids)], "method": "roots/list"})
    for method in ("ping", "roots/list"):
        yield _message({"jsonrpc": "2.0", "id": "r" * 100_000, "method": method})
    for method in ("ping", "roots/list"):
        yield _event(b'{"jsonrpc":"2.0","method":"%s","id":%s}' % (method.encode(), _deep()))
    yield _event(_deep(b'{"jsonrpc":"2.0","id":"x","method":"ping"}'))
    yield from _notifications()


def _notifications() -> Iterator[bytes]:
    yield _event(
        b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":%s}}' % _deep()
    )
    yield _message(
        {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": "m" * 1_000_000},
        }
    )
    yield _message(
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": {"not": "a token"}, "progress": "lots"},
        }
    )
    for request_id in (987654321, "never-sent", {"an": "object"}):
        params = {"requestId": request_id, "reason": "hostile"}
        yield _message({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params})
    for _ in range(FLOOD):
        yield _message({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})


def _garbage_stream(round_: int) -> Iterator[bytes]:
    """One GET stream's worth of malformed SSE, then one valid message."""
    yield b": " + b"c" * 10_000 + b"\n" * 2
    yield b":\n" * 20_000
    for n in range(FLOOD):
        yield b"id: prime-%d-%d\ndata:\n\n" % (round_, n)  # priming events, by the thousand
    yield _message({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    yield _event(b"", b"id: nul\0here")  # ignored (WHATWG: an id with NUL)
    yield _event(b"", b"id: \xff\xfe not utf-8")
    for n in range(200):
        yield _event(b"", b"id: changing-%d-%d" % (round_, n))
    # A 100 kB id, the stream's last: sent back as Last-Event-ID it would be refused
    # (Twisted's server bounds a head at 16 kB) at every reopening.
    yield _event(b"", b"id: " + b"h" * 100_000)
    yield b"retry: soon\n\nretry: 1" + b"0" * 40 + b"\n\nretry: -5\n\n"
    yield _event(b'{"jsonrpc":"2.0","method":"notifications/message"}', b"event: other")
    yield _event(_deep())
    yield _event(b"not json at all")
    yield from _notifications()
    done = {"level": "info", "data": AFTER_THE_GARBAGE}
    yield _message({"jsonrpc": "2.0", "method": "notifications/message", "params": done})


class Hostile(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.sessions = itertools.count(1)
        self.gets = 0
        self.answers = 0
        self.longest_resume = 0
        #: Answers aigw POSTed that are never answered (until aigw drops them).
        self.held: list[Request] = []

    def render_GET(self, request: Request) -> Any:
        if request.path.endswith(b"/stats"):
            request.setHeader(b"content-type", b"application/json")
            seen = {"gets": self.gets, "answers": self.answers}
            return json.dumps({**seen, "longest_resume": self.longest_resume}).encode()
        self.gets += 1
        resume = request.getHeader(b"last-event-id") or b""
        self.longest_resume = max(self.longest_resume, len(resume))
        kind = self.gets % 3
        if kind == 0:
            request.setResponseCode(409)
            return b'{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Conflict"}}'
        if kind == 2:
            request.setHeader(b"content-type", b"application/json")
            return b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}'
        request.setHeader(b"content-type", b"text/event-stream")
        return b"".join(_garbage_stream(self.gets))

    def render_DELETE(self, request: Request) -> bytes:
        return b""

    def render_POST(self, request: Request) -> Any:
        body = json.loads(request.content.read())
        method = body.get("method")
        if method is None:  # an answer of aigw's: refused, or never answered
            self.answers += 1
            if self.answers % 2:
                request.setResponseCode(500)
                return b"refused"
            self.held.append(request)
            request.notifyFinish().addBoth(lambda _: self.held.remove(request))
            return NOT_DONE_YET
        if "id" not in body:
            request.setResponseCode(202)
            return b""
        if method == "initialize":
            request.setHeader(b"mcp-session-id", b"hostile-%d" % next(self.sessions))
            result: Any = {
                "protocolVersion": body["params"]["protocolVersion"],
                "capabilities": {"tools": {"listChanged": True}, "logging": {}},
                "serverInfo": {"name": "hostile", "version": "0"},
            }
        elif method == "tools/list":
            schema = {"type": "object", "properties": {}}
            result = {"tools": [{"name": "hello", "inputSchema": schema}]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": "hello"}]}
        else:
            result = {}
        request.setHeader(b"content-type", b"text/event-stream")
        flood = _reply_flood() if method in ("initialize", "tools/list") else iter(())
        answer = _message({"jsonrpc": "2.0", "id": body["id"], "result": result})
        return b"".join([*flood, answer])


if __name__ == "__main__":
    serve(Hostile())
