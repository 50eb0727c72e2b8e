"""A GET stream's event ids without a message (``client._BodyReader``): a backend's
priming event (MCP 2025-11-25 basic/transports, SEP-1699: an id and empty data), or an
event of an id alone (not dispatched, its id kept: WHATWG §9.2.6), moves the stream's
last event id, and ``get_stream``'s ``on_event_id`` hears of it, once per new id; a
message's id is its own, heard of with the message.

On a memory reactor: the test plays the backend by hand.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.upstream.api import BodyReader
from aigw.upstream.client import Upstream

URL = "http://127.0.0.1:8080/mcp"
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
NOTE = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


def ignored(_: Any) -> None:
    """A sink or reader callback of a test that looks at neither."""


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class StreamEventIdTests(SynchronousTestCase):
    def setUp(self) -> None:
        reactor = MemoryReactorClock()
        upstream = Upstream(BackendConfig(name="mail", url=URL, timeout=10.0), reactor)
        self.received: list[Any] = []
        self.moved: list[str] = []
        self.readers: list[BodyReader] = []
        self.stream = ensureDeferred(
            upstream.get_stream(
                self.received.append,
                "s-1",
                "2025-11-25",
                None,
                self.readers.append,
                on_event_id=self.moved.append,
            )
        )
        self.protocol = reactor.tcpClients[0][2].buildProtocol(None)
        self.protocol.makeConnection(StringTransport())
        self.protocol.dataReceived(SSE_HEAD)

    def send(self, events: bytes) -> None:
        self.protocol.dataReceived(chunk(events))

    def last_event_id(self) -> Any:
        (reader,) = self.readers
        return getattr(reader, "last_event_id", None)

    def test_a_priming_event_moves_the_id_and_is_heard_of_once(self) -> None:
        self.send(b"id: p-1\ndata: \n\n")
        self.assertEqual((self.moved, self.last_event_id()), (["p-1"], "p-1"))
        self.send(b"id: p-1\ndata: \n\n: keep-alive\n\n")  # the same id: nothing new
        self.assertEqual((self.moved, self.received), (["p-1"], []))
        self.assertNoResult(self.stream)

    def test_an_event_of_an_id_alone_moves_it_too(self) -> None:
        self.send(b"id: p-2\n\n")
        self.assertEqual((self.moved, self.last_event_id()), (["p-2"], "p-2"))

    def test_a_messages_id_comes_with_the_message_not_on_its_own(self) -> None:
        """An id alone followed, in the same chunk, by a message is the message's."""
        self.send(b"id: p-1\n\nid: ev-2\ndata: " + json.dumps(NOTE).encode() + b"\n\n")
        self.assertEqual((self.moved, self.received), ([], [NOTE]))
        self.assertEqual(self.last_event_id(), "ev-2")
        self.send(b"data: \n\n")  # no id of its own: the stream's stays
        self.assertEqual(self.moved, [])


class ResumeHeaderTests(SynchronousTestCase):
    def test_an_id_in_another_script_goes_back_as_written_in_utf8(self) -> None:
        """WHATWG HTML §9.2.4: the ``Last-Event-ID`` an EventSource sends is the id,
        UTF-8 encoded; before, each non-ASCII character went back as ``?``, and the
        backend found no such id to resume from."""
        reactor = MemoryReactorClock()
        upstream = Upstream(BackendConfig(name="mail", url=URL, timeout=10.0), reactor)
        ensureDeferred(upstream.get_stream(ignored, "s-1", "2025-11-25", "é-7", ignored))
        transport = StringTransport()
        reactor.tcpClients[0][2].buildProtocol(None).makeConnection(transport)
        self.assertIn(b"\r\nLast-Event-ID: \xc3\xa9-7\r\n", transport.value())
