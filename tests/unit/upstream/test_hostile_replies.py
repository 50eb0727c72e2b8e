"""A backend's reply bodies built to hurt the reader (``Upstream._read``, ``_BodyReader``).

JSON nested deeper than the decoder's recursion allows (orjson refuses past 1024
levels and the standard library's fallback then recurses until Python's limit), or
deeper than aigw could write it again (``jsonrpc.MAX_WRITTEN_DEPTH``), is a message
that is not JSON: an SSE event of it is skipped as any event that is not
JSON, a JSON body of it is a ``bad_reply``; never an exception escaping the reader,
which would leave the request waiting for an end that never comes and log a traceback.

On a memory reactor: the test plays the backend by hand.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.upstream.api import Reply, UpstreamError
from aigw.upstream.client import Upstream

URL = "http://127.0.0.1:8080/mcp"
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t"}}
ANSWER = {"jsonrpc": "2.0", "id": 1, "result": {}}
#: An array nested far past any recursion limit: 100,000 levels in 200 kB.
DEEP = b"[" * 100_000 + b"]" * 100_000


def reply(content_type: bytes, body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


class DeepReplyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.upstream = Upstream(BackendConfig(name="mail", url=URL, timeout=10.0), self.reactor)
        self.received: list[Any] = []

    def post(self, answer: bytes) -> Deferred[Reply]:
        body = json.dumps(CALL).encode()
        sending = ensureDeferred(self.upstream.post(body, self.received.append))
        protocol = self.reactor.tcpClients[-1][2].buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(answer)
        return sending

    def test_a_deep_sse_event_is_skipped_and_the_answer_after_it_taken(self) -> None:
        events = b"data: " + DEEP + b"\n\ndata: " + json.dumps(ANSWER).encode() + b"\n\n"
        replied = self.post(reply(b"text/event-stream", events))
        self.assertEqual(self.successResultOf(replied).status, 200)
        self.assertEqual(self.received, [ANSWER])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_an_event_aigw_could_not_write_again_is_skipped(self) -> None:
        """Nested 1000 deep, orjson decodes it (it stops at 1024) but writes at most 255
        levels, and the standard library's fallback raises ``RecursionError`` past about
        a thousand: relayed to a client, it would raise there.  Refused as it is read
        (``jsonrpc.MAX_WRITTEN_DEPTH``), as any event that is not JSON."""
        deep = b"[" * 1000 + b"]" * 1000
        note = b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":%s}}' % deep
        events = b"data: " + note + b"\n\ndata: " + json.dumps(ANSWER).encode() + b"\n\n"
        replied = self.post(reply(b"text/event-stream", events))
        self.assertEqual(self.successResultOf(replied).status, 200)
        self.assertEqual(self.received, [ANSWER])

    def test_events_that_are_not_json_are_logged_once_per_reply(self) -> None:
        """A stream of garbage costs one warning when it starts and one count when it
        ends, not a line per event (a GET stream may carry them for ever)."""
        events = b"data: not json\n\n" * 1000 + b"data: " + json.dumps(ANSWER).encode() + b"\n\n"
        with capturedLogs() as logged:
            replied = self.post(reply(b"text/event-stream", events))
            self.assertEqual(self.successResultOf(replied).status, 200)
        said = [formatEvent(e) for e in logged if "not JSON" in e.get("log_format", "")]
        self.assertEqual(
            said,
            [
                "backend mail sent an SSE event that is not JSON; skipped (more on this "
                "reply are counted, not logged)",
                "backend mail sent 1000 SSE events that are not JSON on one reply; skipped",
            ],
        )
        self.assertEqual(self.received, [ANSWER])

    def test_a_deep_json_body_is_a_bad_reply(self) -> None:
        replied = self.post(reply(b"application/json", DEEP))
        error = self.failureResultOf(replied, UpstreamError).value
        self.assertEqual((error.kind, error.backend), ("bad_reply", "mail"))
        self.assertEqual(self.received, [])
        self.assertEqual(self.flushLoggedErrors(), [])
