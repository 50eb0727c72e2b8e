"""Bounds of the client-facing HTTP server: body size, headers, idle time, drain."""

from __future__ import annotations

import json
import time

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import datetimeToString
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from aigw.config import ServerConfig
from aigw.web import server
from aigw.web.server import BoundedChannel, BoundedSite, _DatePerSecond


class Echo(Resource):
    isLeaf = True

    def render_POST(self, request):  # type: ignore[no-untyped-def]
        return b"got %d bytes" % len(request.content.read())

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        return b"ok"


def connect(site: BoundedSite) -> tuple[BoundedChannel, StringTransport]:
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 12345))
    assert channel is not None
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def make_site(**limits: object) -> tuple[BoundedSite, Clock]:
    clock = Clock()
    site = BoundedSite(Echo(), ServerConfig(**limits), clock, access_log=False)  # type: ignore[arg-type]
    return site, clock


class BodyLimitTests(SynchronousTestCase):
    def test_content_length_over_the_limit_gets_413_before_the_body(self) -> None:
        site, _ = make_site(max_body_bytes=10)
        channel, transport = connect(site)
        channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n")
        response = transport.value()
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "))
        body = json.loads(response.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(body["error"], "request_too_large")
        self.assertTrue(transport.disconnecting)

    def test_chunked_body_over_the_limit_gets_413_while_reading(self) -> None:
        site, _ = make_site(max_body_bytes=10)
        channel, transport = connect(site)
        channel.dataReceived(
            b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertNotIn(b"got", transport.value())

    def test_body_within_the_limit_is_served(self) -> None:
        site, _ = make_site(max_body_bytes=10)
        channel, transport = connect(site)
        channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789")
        self.assertIn(b"got 10 bytes", transport.value())


class FormBodyTests(SynchronousTestCase):
    def test_a_form_encoded_body_is_left_as_it_came(self) -> None:
        """aigw reads no form bodies: Twisted does not parse them into ``args`` (nor its
        Content-Type, with ``email``), the body reaches the resource whole."""
        seen: list[dict[bytes, list[bytes]]] = []

        class Args(Echo):
            def render_POST(self, request):  # type: ignore[no-untyped-def]
                seen.append(dict(request.args))
                return super().render_POST(request)

        site = BoundedSite(Args(), ServerConfig(), Clock(), access_log=False)
        channel, transport = connect(site)
        channel.dataReceived(
            b"POST /x?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\na=1"
        )
        self.assertIn(b"got 3 bytes", transport.value())
        self.assertEqual(seen, [{b"q": [b"1"]}])


class CookieTests(SynchronousTestCase):
    def test_a_cookie_is_left_unparsed_and_the_request_served(self) -> None:
        """aigw reads no cookie: Twisted's parse of the header is skipped, the header
        itself stays readable and the request is answered as any other."""
        seen: list[tuple[dict[bytes, bytes], object]] = []

        class Cookies(Echo):
            def render_GET(self, request):  # type: ignore[no-untyped-def]
                seen.append(
                    (request.received_cookies, request.requestHeaders.getRawHeaders(b"cookie"))
                )
                return super().render_GET(request)

        site = BoundedSite(Cookies(), ServerConfig(), Clock(), access_log=False)
        channel, transport = connect(site)
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\nCookie: sid=1; b=2\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))
        self.assertEqual(seen, [({}, [b"sid=1; b=2"])])


class HeaderLimitTests(SynchronousTestCase):
    def assertRefused(self, transport: StringTransport, status: bytes, error: str) -> None:
        """A short JSON answer with ``Connection: close``, then the connection closes."""
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 " + status), head)
        self.assertIn(b"Connection: close", head)
        self.assertEqual(json.loads(body)["error"], error)
        self.assertTrue(transport.disconnecting)

    def test_header_block_over_the_limit_is_431(self) -> None:
        """A header block over `max_header_bytes`, in several lines (RFC 6585 §5).

        expected: 431 Request Header Fields Too Large, JSON body, `Connection: close`, closed
        """
        site, _ = make_site(max_header_bytes=200)
        channel, transport = connect(site)
        lines = b"".join(b"X-H%d: " % i + b"a" * 50 + b"\r\n" for i in range(5))
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n")
        self.assertRefused(
            transport, b"431 Request Header Fields Too Large", "header_fields_too_large"
        )

    def test_one_header_line_over_the_line_bound_is_431_not_a_silent_drop(self) -> None:
        """One header line over the bound (RFC 6585 §5; was dropped with no response).

        expected: 431 Request Header Fields Too Large, JSON body, `Connection: close`, closed
        """
        site, _ = make_site()
        channel, transport = connect(site)
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20_000)
        self.assertRefused(transport, b"431 ", "header_fields_too_large")

    def test_too_many_headers_is_431(self) -> None:
        """More header fields than `max_headers` (RFC 6585 §5).

        expected: 431 Request Header Fields Too Large, JSON body, `Connection: close`, closed
        """
        site, _ = make_site(max_headers=5)
        channel, transport = connect(site)
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(10))
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n")
        self.assertRefused(transport, b"431 ", "header_fields_too_large")

    def test_request_line_over_the_bound_is_414(self) -> None:
        """A request line over the bound (RFC 9112 §3).

        expected: 414 URI Too Long, JSON body, `Connection: close`, closed
        """
        site, _ = make_site(max_header_bytes=200)
        channel, transport = connect(site)
        channel.dataReceived(b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertRefused(transport, b"414 URI Too Long", "uri_too_long")

    def test_malformed_request_is_a_json_400(self) -> None:
        """RFC 9112 §5: a header line without a colon is a bad request."""
        site, _ = make_site()
        channel, transport = connect(site)
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n")
        self.assertRefused(transport, b"400 Bad Request", "invalid_request")

    def test_headers_within_the_limits_are_served(self) -> None:
        site, _ = make_site(max_header_bytes=200, max_headers=5)
        channel, transport = connect(site)
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))

    def test_the_limits_are_exact(self) -> None:
        """Twisted counts the head (request line and field lines, without their CRLF) and
        its fields; aigw tells its refusals apart from those counts.

        expected: exactly `max_headers` fields and exactly `max_header_bytes` bytes are
        served; one field or one byte more is 431."""
        request_line = b"GET /x HTTP/1.1"
        fields = [b"Host: a", b"X-A: 1", b"X-B: 2"]
        size = len(request_line) + sum(len(f) for f in fields)
        for max_headers, max_header_bytes, status in (
            (3, size, b"200 "),
            (2, size, b"431 "),
            (3, size - 1, b"431 "),
        ):
            site, _ = make_site(max_headers=max_headers, max_header_bytes=max_header_bytes)
            channel, transport = connect(site)
            channel.dataReceived(b"\r\n".join([request_line, *fields]) + b"\r\n\r\n")
            self.assertTrue(
                transport.value().startswith(b"HTTP/1.1 " + status),
                (max_headers, max_header_bytes, transport.value()),
            )

    def test_a_long_request_line_after_a_kept_alive_request_is_414(self) -> None:
        """The second request of a connection is judged as the first: its request line
        over the bound is 414, its header block 431 (RFC 9112 §3, RFC 6585 §5)."""
        for second, status in (
            (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n", b"414 "),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 300 + b"\r\n\r\n", b"431 "),
        ):
            site, _ = make_site(max_header_bytes=200)
            channel, transport = connect(site)
            channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "))
            transport.clear()
            channel.dataReceived(second)
            self.assertRefused(
                transport,
                status,
                "uri_too_long" if status == b"414 " else "header_fields_too_large",
            )


class AccessLogTests(SynchronousTestCase):
    def test_http_lines_are_on_the_access_namespace(self) -> None:
        """The namespace operators filter on, shared with access_log.AccessLogObserver."""
        clock = Clock()
        site = BoundedSite(Echo(), ServerConfig(), clock)
        events: list[dict[str, object]] = []
        site.access_logger.observer = events.append
        channel, _ = connect(site)
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        (event,) = events
        self.assertEqual((event["log_namespace"], event["status"]), ("aigw.access", 200))


class SendBeforeBookkeepingTests(SynchronousTestCase):
    """A finished answer is handed to ``send_now`` before Twisted's bookkeeping of
    ``finish`` (the access log, the channel's clean-up): at concurrency 1 the client
    gets it while that work runs (aigw/tcp_writes.py)."""

    def _order(self, request_bytes: bytes, resource: Resource) -> list[str]:
        order: list[str] = []
        clock = Clock()
        site = BoundedSite(resource, ServerConfig(), clock)
        site.access_logger.observer = lambda event: order.append("access log")
        channel, transport = connect(site)
        self.patch(server, "send_now", lambda sent: order.append(f"send_now {sent is transport}"))
        channel.dataReceived(request_bytes)
        return order

    def test_a_whole_answer_is_sent_before_the_access_log(self) -> None:
        order = self._order(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", Echo())
        self.assertEqual(order, ["send_now True", "access log"])

    def test_an_answer_finish_completes_is_sent_after_it(self) -> None:
        """Chunked: ``finish`` writes the last chunk, so the answer is whole only then."""

        class Chunked(Resource):
            isLeaf = True

            def render_GET(self, request):  # type: ignore[no-untyped-def]
                request.write(b"part")  # no length: HTTP/1.1 chunks it
                request.finish()
                return NOT_DONE_YET

        order = self._order(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", Chunked())
        self.assertEqual(order, ["access log", "send_now True"])


class IdleAndDrainTests(SynchronousTestCase):
    def test_idle_connection_is_closed_after_the_idle_timeout(self) -> None:
        site, clock = make_site(idle_timeout=5.0)
        _, transport = connect(site)
        clock.advance(6)
        self.assertTrue(transport.disconnecting)

    def test_a_head_sent_a_byte_at_a_time_is_cut_by_the_header_deadline(self) -> None:
        """Slowloris: a request head trickled one byte every 2 s, each byte restarting
        the idle timer (`idle_timeout` 5 s, `header_timeout` 10 s).

        expected: 408 Request Timeout, JSON body, `Connection: close`, closed at the
        header deadline, though the idle timer never ran out
        """
        site, clock = make_site(idle_timeout=5.0, header_timeout=10.0)
        channel, transport = connect(site)
        head = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 100
        for byte in head[:4]:
            channel.dataReceived(bytes([byte]))
            clock.advance(2)
            self.assertFalse(transport.disconnecting)
        channel.dataReceived(head[4:5])
        clock.advance(2.5)  # 10.5 s after the first byte
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        body = transport.value().split(b"\r\n\r\n", 1)[1]
        self.assertEqual(json.loads(body)["error"], "request_timeout")
        self.assertTrue(transport.disconnecting)

    def test_the_header_deadline_spares_whole_heads_and_keep_alive(self) -> None:
        """Heads that arrive whole are served, however long the connection lives."""
        site, clock = make_site(idle_timeout=50.0, header_timeout=10.0)
        channel, transport = connect(site)
        for _ in range(3):
            channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            clock.advance(8)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 3)
        self.assertNotIn(b"408", transport.value())
        self.assertFalse(transport.disconnecting)
        clock.advance(41.9)  # the idle timeout counts from the last answer: 50 s
        self.assertFalse(transport.disconnecting)
        clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertNotIn(b"408", transport.value())

    def test_a_busy_connection_arms_no_timer_per_request(self) -> None:
        """The head deadline and the idle timeout are one pending call each, at most,
        however many requests the connection serves (they were made and cancelled
        per request)."""
        site, clock = make_site(idle_timeout=50.0, header_timeout=10.0)
        made: list[float] = []
        call_later = clock.callLater

        def counting(delay: float, *args: object, **kwargs: object) -> object:
            made.append(delay)
            return call_later(delay, *args, **kwargs)

        clock.callLater = counting  # type: ignore[method-assign,assignment]
        channel, transport = connect(site)
        for _ in range(100):
            channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            clock.advance(0.01)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 100)
        self.assertLessEqual(len(made), 2)
        self.assertLessEqual(len(clock.getDelayedCalls()), 2)

    def test_drain_closes_idle_connections_at_once(self) -> None:
        site, clock = make_site()
        channel, transport = connect(site)
        done = site.drain(10.0)
        self.assertTrue(transport.disconnecting)
        channel.connectionLost(None)  # type: ignore[arg-type]
        clock.advance(0.1)
        self.successResultOf(done)

    def test_drain_aborts_busy_connections_after_the_bound(self) -> None:
        site, clock = make_site()
        channel, transport = connect(site)
        # A request whose body has not fully arrived keeps the connection busy.
        channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01")
        done = site.drain(2.0)
        self.assertNoResult(done)
        self.assertFalse(transport.disconnecting)
        clock.advance(2.1)
        self.successResultOf(done)


class CountingTransport(StringTransport):
    """Counts how often the local address is asked for (a system call on a real socket)."""

    asked = 0

    def getHost(self) -> IPv4Address:  # type: ignore[override]
        self.asked += 1
        return super().getHost()  # type: ignore[no-any-return]


class LocalAddressTests(SynchronousTestCase):
    def test_local_address_is_asked_of_the_socket_once_per_connection(self) -> None:
        site, _ = make_site()
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 12345))
        assert channel is not None
        transport = CountingTransport()
        channel.makeConnection(transport)
        for _ in range(3):
            channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 "), 3)
        self.assertEqual(transport.asked, 1)
        self.assertEqual(channel.getHost(), transport.getHost())


class DateHeaderTests(SynchronousTestCase):
    def test_responses_carry_the_date_formatted_once_a_second(self) -> None:
        """RFC 9110 §6.6.1: ``Date`` to the second; Twisted formatted it per response."""
        formatted: list[float] = []

        def counting(seconds: float | None = None) -> bytes:
            formatted.append(seconds if seconds is not None else -1)
            return datetimeToString(seconds)

        date = _DatePerSecond(counting)
        now = [1_800_000_000.25]
        self.patch(time, "time", lambda: now[0])
        self.assertEqual(date(), b"Fri, 15 Jan 2027 08:00:00 GMT")
        now[0] += 0.5
        self.assertEqual(date(), b"Fri, 15 Jan 2027 08:00:00 GMT")
        self.assertEqual(formatted, [1_800_000_000])
        now[0] += 0.5
        self.assertEqual(date(), b"Fri, 15 Jan 2027 08:00:01 GMT")
        self.assertEqual(date(0), b"Thu, 01 Jan 1970 00:00:00 GMT")  # a given time: formatted

    def test_the_site_answers_with_the_current_date(self) -> None:
        self.patch(time, "time", lambda: 1_800_000_000.0)
        site, _ = make_site()
        channel, transport = connect(site)
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIn(b"\r\nDate: Fri, 15 Jan 2027 08:00:00 GMT\r\n", transport.value())
