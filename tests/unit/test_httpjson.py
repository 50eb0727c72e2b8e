"""``aigw.httpjson``: a body trickled slower than the timeout closes its connection."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from aigw.httpjson import FetchFailed, TreqClient, fetch


class TricklingResponse:
    """A response whose body the test delivers, over a transport that records closing."""

    code = 200
    length = UNKNOWN_LENGTH
    headers = Headers()

    def __init__(self) -> None:
        self.transport = StringTransport()
        self.body: Protocol | None = None

    def deliverBody(self, protocol: Protocol) -> None:
        self.body = protocol
        protocol.makeConnection(self.transport)


class Trickling:
    """An ``HTTPClient``: one trickling response, collected by aigw's real ``TreqClient``."""

    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.response = TricklingResponse()
        self._client = TreqClient(reactor, HTTPConnectionPool(reactor, persistent=False), 5)

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        return succeed(self.response)

    def collect(self, response: Any, collector: Any) -> Deferred[None]:
        return self._client.collect(response, collector)


class CollectTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.http = Trickling(self.reactor)
        self.fetched = fetch(
            self.http, self.reactor, "POST", "https://as.example/token", timeout=5, max_bytes=100
        )
        self.body = self.http.response.body
        assert self.body is not None

    def test_a_body_slower_than_the_timeout_closes_its_connection(self) -> None:
        """Before: treq's collect could not be cancelled; the connection stayed open,
        the server trickling into a collector nobody read."""
        for _ in range(4):
            self.body.dataReceived(b" ")
            self.reactor.advance(1)
        self.assertNoResult(self.fetched)
        self.reactor.advance(1)
        error = self.failureResultOf(self.fetched, FetchFailed).value
        self.assertIn("no answer within 5 s", str(error))
        self.assertTrue(self.http.response.transport.disconnecting)
        self.body.dataReceived(b"more")  # ignored: nothing raises

    def test_a_body_past_the_bound_closes_its_connection(self) -> None:
        self.body.dataReceived(b"x" * 101)
        self.assertIn("larger than 100", str(self.failureResultOf(self.fetched, FetchFailed).value))
        self.assertTrue(self.http.response.transport.disconnecting)

    def test_a_whole_body_is_the_answer(self) -> None:
        self.body.dataReceived(b'{"a"')
        self.body.dataReceived(b": 1}")
        self.body.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(self.fetched).body, b'{"a": 1}')
        self.assertFalse(self.http.response.transport.disconnecting)
