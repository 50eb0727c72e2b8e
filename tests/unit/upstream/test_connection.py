"""aigw.upstream.connection against a scripted HTTP server on a memory network.

The server answers each request with the raw bytes the test gives it, so the
framing cases of RFC 9112 (Content-Length, chunked, close-delimited, interim
responses, keep-alive and ``Connection: close``) and broken replies are
exercised through the pool's own endpoint, connection by connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, ensureDeferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from aigw.upstream import connection as connection_module
from aigw.upstream.connection import (
    MAX_HEADER_FIELDS,
    ConnectionPool,
    ProtocolViolation,
    Target,
    UpstreamResponse,
)
from tests.unit.memory import MemoryNetwork, run

#: Each reply is a list of writes, sent 10 ms apart; ``None`` closes.
Script = list[bytes | None]


class _Scripted(Protocol):
    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.buffer = b""

    def connectionMade(self) -> None:
        self.server.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.server.requests.append(head + b"\r\n\r\n" + rest[:length])
            self._play(list(self.server.replies.pop(0)))

    def _play(self, writes: Script) -> None:
        if not writes:
            return
        data = writes.pop(0)
        if data is None:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.transport.write(data)  # type: ignore[union-attr]
        if writes:
            self.server.timers.append(self.server.clock.callLater(0.01, self._play, writes))


class ScriptedServer(Factory):
    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.replies: list[Script] = []
        self.requests: list[bytes] = []
        self.connections: list[_Scripted] = []
        self.timers: list[Any] = []

    def buildProtocol(self, addr: Any) -> _Scripted:
        return _Scripted(self)


class _Body(Protocol):
    """Collects a body and how it ended."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.ended: Deferred[tuple[Failure]] = Deferred()  # a bare Failure would errback
        self.on_chunk: Callable[[bytes], None] | None = None

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)
        if self.on_chunk is not None:
            self.on_chunk(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        self.ended.callback((reason,))


JSON_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class ConnectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.network = MemoryNetwork()
        reactor = self.network.reactor
        self.server = ScriptedServer(reactor)
        url = f"http://127.0.0.1:{self.network.serve(self.server)}/mcp?x=1"
        self.target = Target(url, reactor, 5)
        self.pool = ConnectionPool(self.target, 4, reactor, keep_alive=4.0)
        self.addCleanup(self._close)

    def _close(self) -> None:
        self.pool.close()
        for timer in self.server.timers:
            if timer.active():
                timer.cancel()
        for connection in self.server.connections:
            if connection.transport is not None:
                connection.transport.abortConnection()  # type: ignore[attr-defined]

    async def exchange(self, *writes: bytes | None) -> tuple[UpstreamResponse, _Body, Failure]:
        self.server.replies.append(list(writes))
        head = self.target.head(b"POST", [(b"Content-Type", b"application/json")], 2)
        response = await self.pool.request(head, b"{}")
        body = _Body()
        response.deliverBody(body)
        (reason,) = await body.ended
        return response, body, reason

    @run
    async def test_request_head_is_built_from_the_url(self) -> None:
        await self.exchange(JSON_OK)
        sent = self.server.requests[0]
        port = self.target.host_header.split(b":")[1]
        self.assertTrue(sent.startswith(b"POST /mcp?x=1 HTTP/1.1\r\nHost: 127.0.0.1:" + port))
        self.assertIn(b"\r\nContent-Length: 2\r\n\r\n{}", sent)

    @run
    async def test_the_whole_request_is_handed_to_send_now_once_written(self) -> None:
        """aigw/tcp_writes.py: a lone call's request leaves before the caller's remaining
        work, so it is handed over whole (head and body written) right after its write."""
        handed: list[bytes] = []

        def send_now(transport: Any) -> None:
            handed.append(b"".join(transport.stream))  # what the transport holds by then

        self.patch(connection_module, "send_now", send_now)
        await self.exchange(JSON_OK)
        (held,) = handed
        self.assertTrue(held.startswith(b"POST /mcp?x=1 HTTP/1.1\r\n"))
        self.assertTrue(held.endswith(b"\r\n\r\n{}"))

    @run
    async def test_content_length_body_and_the_connection_is_reused(self) -> None:
        """RFC 9112 section 9.3: HTTP/1.1 connections persist unless told otherwise."""
        response, body, reason = await self.exchange(JSON_OK)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header(b"content-type"), b"application/json")
        self.assertEqual(b"".join(body.chunks), b"{}")
        self.assertTrue(reason.check(ResponseDone))
        await self.exchange(JSON_OK)
        self.assertEqual(len(self.server.connections), 1)

    @run
    async def test_connection_close_is_not_reused(self) -> None:
        closing = JSON_OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        await self.exchange(closing)
        await self.exchange(JSON_OK)
        self.assertEqual(len(self.server.connections), 2)

    @run
    async def test_chunked_body_arrives_chunk_by_chunk(self) -> None:
        """Each chunk is handed on when it arrives, before the body ends (SSE progress)."""
        seen_before_end: list[bytes] = []
        self.server.replies.append(
            [
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                b"6\r\nsecond\r\n",
                b"0\r\n\r\n",
            ]
        )
        head = self.target.head(b"POST", [], 2)
        response = await self.pool.request(head, b"{}")
        body = _Body()
        body.on_chunk = lambda chunk: seen_before_end.append(chunk)
        response.deliverBody(body)
        (reason,) = await body.ended
        self.assertEqual(seen_before_end, [b"first", b"second"])
        self.assertTrue(reason.check(ResponseDone))
        await self.exchange(JSON_OK)
        self.assertEqual(len(self.server.connections), 1)

    @run
    async def test_body_ending_with_the_connection(self) -> None:
        """RFC 9112 section 6.3: no length and no chunking: the body ends at close."""
        _, body, reason = await self.exchange(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{", b"}", None
        )
        self.assertEqual(b"".join(body.chunks), b"{}")
        self.assertTrue(reason.check(PotentialDataLoss))

    @run
    async def test_connection_lost_mid_body(self) -> None:
        _, _, reason = await self.exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{", None)
        self.assertTrue(reason.check(ConnectionLost))

    @run
    async def test_interim_response_is_skipped(self) -> None:
        response, body, _ = await self.exchange(b"HTTP/1.1 100 Continue\r\n\r\n" + JSON_OK)
        self.assertEqual(response.code, 200)
        self.assertEqual(b"".join(body.chunks), b"{}")

    @run
    async def test_bytes_that_are_not_http_are_a_protocol_violation(self) -> None:
        self.server.replies.append([b"SSH-2.0-OpenSSH_9.2\r\n\r\n"])
        with self.assertRaises(ProtocolViolation):
            await self.pool.request(self.target.head(b"POST", [], 2), b"{}")

    @run
    async def test_head_with_too_many_fields_is_refused(self) -> None:
        fields = b"".join(b"X-%d: a\r\n" % n for n in range(MAX_HEADER_FIELDS + 1))
        self.server.replies.append([b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 0\r\n\r\n"])
        with self.assertRaises(ProtocolViolation):
            await self.pool.request(self.target.head(b"POST", [], 2), b"{}")

    @run
    async def test_endless_header_line_is_refused(self) -> None:
        """A field that never ends would be held whole by the parser: bounded."""
        self.server.replies.append([b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000])
        with self.assertRaises(ProtocolViolation):
            await self.pool.request(self.target.head(b"POST", [], 2), b"{}")

    @run
    async def test_endless_interim_responses_are_refused(self) -> None:
        self.server.replies.append([b"HTTP/1.1 100 Continue\r\n\r\n" * 4000])
        with self.assertRaises(ProtocolViolation):
            await self.pool.request(self.target.head(b"POST", [], 2), b"{}")

    @run
    async def test_connection_lost_before_the_response(self) -> None:
        self.server.replies.append([None])
        with self.assertRaises(ConnectionLost):
            await self.pool.request(self.target.head(b"POST", [], 2), b"{}")

    @run
    async def test_unsolicited_bytes_drop_the_idle_connection(self) -> None:
        """Bytes after a complete response: the framing is off, the link is not reused."""
        for surplus in (b"HTTP/1.1 200 OK\r\n", JSON_OK):
            _, body, _ = await self.exchange(JSON_OK + surplus)
            self.assertEqual(b"".join(body.chunks), b"{}")
        await self.exchange(JSON_OK)
        self.assertEqual(len(self.server.connections), 3)

    @run
    async def test_cancelling_aborts_the_connection(self) -> None:
        self.server.replies.append([])  # never answers
        waiting = ensureDeferred(self.pool.request(self.target.head(b"POST", [], 2), b"{}"))
        await self.network.settle()
        self.assertEqual(len(self.server.requests), 1)
        waiting.cancel()
        with self.assertRaises(CancelledError):
            await waiting
        await self.exchange(JSON_OK)
        self.assertEqual(len(self.server.connections), 2)

    @run
    async def test_no_answer_within_the_bound_times_out(self) -> None:
        self.server.replies.append([])  # never answers
        with self.assertRaises(TimeoutError):
            await self.pool.request(self.target.head(b"POST", [], 2), b"{}", 0.05)
        await self.exchange(JSON_OK)
        self.assertEqual(len(self.server.connections), 2)

    @run
    async def test_stopping_the_body_drops_the_connection(self) -> None:
        self.server.replies.append(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n", b"1\r\nb\r\n"]
        )
        response = await self.pool.request(self.target.head(b"POST", [], 2), b"{}")
        body = _Body()
        body.on_chunk = lambda _: response.stopProducing()
        response.deliverBody(body)
        (reason,) = await body.ended
        self.assertTrue(reason.check(ConnectionLost))
        await self.exchange(JSON_OK)
        self.assertEqual(len(self.server.connections), 2)

    @run
    async def test_pausing_stops_reading_until_resumed_and_never_outlives_the_body(self) -> None:
        """Flow control (``gateway/flow.py``): pausing the body pauses the connection's
        transport; a body that ends within the read it was paused in resumes it, so the
        connection goes back to the pool reading, and pausing an ended body does nothing."""
        self.server.replies.append(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1\r\na\r\n0\r\n\r\n"]
        )
        response = await self.pool.request(self.target.head(b"POST", [], 2), b"{}")
        (link,) = self.network.links()
        calls: list[str] = []
        link.clientIO.pauseProducing = lambda: calls.append("pause")
        link.clientIO.resumeProducing = lambda: calls.append("resume")
        body = _Body()
        body.on_chunk = lambda _: response.pauseProducing()
        response.deliverBody(body)
        (reason,) = await body.ended
        self.assertTrue(reason.check(ResponseDone))
        self.assertEqual(calls, ["pause", "resume"])
        response.pauseProducing()  # the connection may serve another request by now
        response.resumeProducing()
        await self.exchange(JSON_OK)
        self.assertEqual(calls, ["pause", "resume"])
        self.assertEqual(len(self.server.connections), 1)


class TargetTests(SynchronousTestCase):
    def target(self, url: str) -> Target:
        return Target(url, MemoryReactorClock(), 5)

    def test_default_ports_are_left_out_of_host(self) -> None:
        """RFC 9110 section 7.2: Host is the authority, the port only when it is not the default."""
        self.assertEqual(self.target("http://example.test/mcp").host_header, b"example.test")
        self.assertEqual(self.target("https://example.test:443/").host_header, b"example.test")
        self.assertEqual(self.target("http://[::1]:8080/").host_header, b"[::1]:8080")

    def test_addresses_connect_directly_and_names_are_resolved(self) -> None:
        """An IP literal needs no resolver thread; a name goes through HostnameEndpoint."""
        from twisted.internet.endpoints import (
            HostnameEndpoint,
            TCP4ClientEndpoint,
            TCP6ClientEndpoint,
        )

        self.assertIsInstance(self.target("http://127.0.0.1:9/").endpoint, TCP4ClientEndpoint)
        self.assertIsInstance(self.target("http://[::1]:9/").endpoint, TCP6ClientEndpoint)
        self.assertIsInstance(self.target("http://localhost:9/").endpoint, HostnameEndpoint)

    def test_path_defaults_to_slash(self) -> None:
        self.assertEqual(self.target("http://example.test").path, b"/")

    def test_header_values_with_line_breaks_are_refused(self) -> None:
        """RFC 9110 section 5.5: CR, LF and NUL never appear in a field value."""
        target = self.target("http://example.test/mcp")
        for bad in (b"a\r\nX-Injected: 1", b"a\nb", b"a\rb", b"a\0", b"\r\n"):
            with self.assertRaises(ValueError):
                target.head(b"GET", [(b"Last-Event-ID", bad)], None)
            with self.assertRaises(ValueError):  # wherever the field is, with a body too
                target.head(b"POST", [(b"Accept", b"*/*"), (b"Mcp-Session-Id", bad)], 2)
        with self.assertRaises(ValueError):  # a name (Mcp-Param-*: from a tool's schema)
            target.head(b"POST", [(b"Mcp-Param-a\r\nX-Injected", b"1")], 2)
        self.assertEqual(
            target.head(b"POST", [(b"Accept", b"*/*"), (b"Mcp-Session-Id", b"s-1")], 2),
            b"POST /mcp HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n"
            b"Mcp-Session-Id: s-1\r\nContent-Length: 2\r\n\r\n",
        )

    def test_only_http_urls(self) -> None:
        with self.assertRaises(ValueError):
            self.target("ftp://example.test/")
