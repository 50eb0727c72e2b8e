"""A backend's HTTP error whose body is a JSON-RPC error (``Upstream._read``).

2026-07-28 basic/transports/streamable-http refuses a request with a 4xx whose body is
the error response to it, its id the request's ("Server Validation": 400, "Protocol
Version Header": 404): that is the backend's answer.  Any other JSON-RPC error body
answers nothing aigw sent (2025-11-25 basic/transports: a refused notification or
response "MAY comprise a JSON-RPC error response that has no id"; the Python SDK 1.x
answers a session's second GET stream 409 with the id ``"server-error"``, the TypeScript
SDK with ``null``): the HTTP error is raised, with its status and the body.

On a memory reactor: the test plays the backend by hand.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.upstream.api import Reply, UpstreamError
from aigw.upstream.client import Upstream

URL = "http://127.0.0.1:8080/mcp"
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t"}}
CONFLICT = "Conflict: Only one SSE stream is allowed per session"


def refusal(request_id: Any, code: int = -32600, message: str = CONFLICT) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def http_error(status: int, body: dict[str, Any]) -> bytes:
    content = json.dumps(body).encode()
    head = b"HTTP/1.1 %d Refused\r\nContent-Type: application/json\r\n" % status
    return head + b"Content-Length: %d\r\n\r\n" % len(content) + content


class ErrorReplyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.upstream = Upstream(BackendConfig(name="mail", url=URL, timeout=10.0), self.reactor)
        self.received: list[Any] = []
        self.connections: list[IProtocol] = []

    def answered(self, sending: Deferred[Reply], reply: bytes) -> Deferred[Reply]:
        """The backend's ``reply`` to what is being sent (on a new connection, or on the
        kept-alive one)."""
        if len(self.reactor.tcpClients) > len(self.connections):
            protocol = self.reactor.tcpClients[-1][2].buildProtocol(None)
            protocol.makeConnection(StringTransport())
            self.connections.append(protocol)
        self.connections[-1].dataReceived(reply)
        return sending

    def post(self, message: Any, reply: bytes) -> Deferred[Reply]:
        """POST to a 2026-07-28 backend (no session)."""
        body = json.dumps(message).encode()
        sending = ensureDeferred(self.upstream.post(body, self.received.append))
        return self.answered(sending, reply)

    def get_stream(self, reply: bytes) -> Deferred[Reply]:
        sending = ensureDeferred(
            self.upstream.get_stream(self.received.append, "up-1", None, None, lambda r: None)
        )
        return self.answered(sending, reply)

    def raised(self, replied: Deferred[Reply], status: int) -> UpstreamError:
        error = self.failureResultOf(replied, UpstreamError).value
        self.assertEqual((error.kind, error.status), ("http_error", status))
        self.assertEqual(self.received, [])
        return error

    def test_an_error_with_the_requests_id_is_its_answer(self) -> None:
        refused = refusal(1, -32001, "Header mismatch")
        reply = self.successResultOf(self.post(CALL, http_error(400, refused)))
        self.assertEqual((reply.status, self.received), (400, [refused]))

    def test_an_error_answering_one_request_of_a_batch_is_its_answer(self) -> None:
        batch = [CALL, {**CALL, "id": "two"}]
        refused = refusal("two", -32601, "Method not found")
        reply = self.successResultOf(self.post(batch, http_error(404, refused)))
        self.assertEqual((reply.status, self.received), (404, [refused]))

    def test_the_python_sdks_second_stream_refusal_is_an_http_error(self) -> None:
        """The Python SDK 1.x: 409, the id "server-error"; not an answer to relay."""
        error = self.raised(self.get_stream(http_error(409, refusal("server-error"))), 409)
        self.assertIn(CONFLICT, error.detail)

    def test_the_typescript_sdks_second_stream_refusal_is_the_same_http_error(self) -> None:
        error = self.raised(self.get_stream(http_error(409, refusal(None))), 409)
        self.assertIn(CONFLICT, error.detail)

    def test_an_error_with_another_id_than_the_requests_is_an_http_error(self) -> None:
        error = self.raised(self.post(CALL, http_error(400, refusal("server-error"))), 400)
        self.assertIn("server-error", error.detail)
        self.raised(self.post(CALL, http_error(400, refusal("1"))), 400)  # not the int 1

    def test_an_error_naming_a_response_aigw_sent_is_an_http_error(self) -> None:
        """aigw's answer to a backend's request holds no request: nothing to answer."""
        answer = {"jsonrpc": "2.0", "id": 7, "result": {}}
        self.raised(self.post(answer, http_error(400, refusal(7))), 400)
