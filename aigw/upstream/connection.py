"""Persistent HTTP/1.1 connections to one backend, for aigw's own request shapes.

aigw sends a few kinds of request to an MCP backend (POST of a JSON-RPC
message, the GET stream, DELETE of a session), always to the same URL.  Twisted's
``Agent`` re-parses that URL, builds an endpoint and runs a general response
state machine on every request: about two fifths of a proxied call's CPU time
(docs/performance.md).  Here the URL is parsed and the endpoint built once, the
request head is written from bytes, and the response is parsed by
``httptools`` (llhttp, Node's HTTP/1.1 parser: strict about framing, chunked
coding and header syntax, which is what an upstream's hostile reply needs).

A response is handed over as soon as its head is complete; its body goes to an
``IProtocol`` given to :meth:`UpstreamResponse.deliverBody` with the same
contract as Twisted's ``IResponse``: ``dataReceived`` per chunk, then
``connectionLost`` with ``ResponseDone`` (or ``PotentialDataLoss`` for a body
that ends with the connection), or another reason when the transfer broke.
The protocol's transport is an ``IPushProducer`` whose ``stopProducing``
drops the connection.  A connection goes back to the idle list only after a
complete response that allows keep-alive (RFC 9112 section 9.3).

An idle connection is closed by aigw before the backend would close it: after
the backend's ``keep_alive_timeout``, or sooner when its response says ``Keep-Alive:
timeout=N`` (then N less ``KEEP_ALIVE_MARGIN``: the hint Node's HTTP server sends;
the header is RFC 2068 section 19.7.1.1's, its ``timeout`` parameter that of
draft-thomson-hybi-http-timeout-03).  A backend that closes an idle connection as a
request goes out on it still races aigw; that request fails with
:class:`StaleConnection` when the connection had served an earlier exchange and
not one byte of the response came, and the caller may send it once more on a new
connection if it is safe to (``ConnectionPool.request``'s ``replayable``;
RFC 9112 section 9.3.1).

The pool tells the gateway's observer when a connection is opened, cannot be
made, or is lost mid-exchange by the backend or the network
(``UpstreamConnection``), and a stale connection's request sent again
(``replayed``: lost, then recovered); closing an idle connection, by either side, and
dropping one on purpose (cancelled, timed out, shutdown) are the normal life of
a keep-alive pool and are not reported.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httptools
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import ConnectingCancelledError, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from zope.interface import implementer

from aigw.deadline import Deadline
from aigw.events import ConnectionState, GatewayObserver, UpstreamConnection
from aigw.tcp_writes import batch_writes, send_now
from aigw.tls import client_endpoint, tcp_endpoint

#: Bound on a response head (status line and header fields); llhttp itself has none.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100
#: How every complete body ends (one Failure: readers only look at its value).
_RESPONSE_DONE = Failure(ResponseDone("response complete"))
#: Taken off a backend's ``Keep-Alive: timeout``: the backend's clock starts when it
#: has written the response, aigw's when it has read it (latency, a busy reactor).
#: undici (Node's fetch) takes a margin off too (``keepAliveTimeoutThreshold``).
KEEP_ALIVE_MARGIN = 1.0


class ProtocolViolation(Exception):
    """The backend's bytes are not an HTTP/1.1 response aigw can accept."""


class StaleConnection(ConnectionLost):
    """A connection kept alive from an earlier exchange was lost before one byte of
    the response arrived: most likely the backend closed it while idle as the
    request went out, though a backend that read the request and died looks the
    same (which is why only a request safe to replay is sent again).  ``detail``: how
    it was lost, for the pool's report."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def keep_alive_hint(value: bytes | None) -> float | None:
    """The ``timeout`` parameter of a ``Keep-Alive`` header field, in seconds
    (``timeout=5, max=100``), or None when there is none that reads as a number."""
    if not value:
        return None
    return _keep_alive_seconds(value)


@functools.lru_cache(maxsize=64)
def _keep_alive_seconds(value: bytes) -> float | None:
    """Memoized: a backend sends the same value with every response (bounded: the
    values come from outside)."""
    for parameter in value.split(b","):
        name, _, number = parameter.partition(b"=")
        if name.strip().lower() == b"timeout":
            try:
                seconds = float(number.strip().strip(b'"'))
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


def _never() -> bool:
    return False


class Target:
    """Where one backend lives: parsed once, with the endpoint to reach it."""

    def __init__(
        self, url: str, reactor: Any, connect_timeout: float, ca_file: str | None = None
    ) -> None:
        """``ca_file``: for ``https``, the only certificates trusted (else the system's)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        host = parts.hostname
        self.path = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode(
            "ascii"
        )
        default_port = port == (443 if secure else 80)
        host_field = f"[{host}]" if ":" in host else host
        self.host_header = (host_field if default_port else f"{host_field}:{port}").encode("ascii")
        endpoint = tcp_endpoint(reactor, host, port, connect_timeout)
        if secure:
            name = host.encode("idna").decode("ascii")
            endpoint = client_endpoint(endpoint, name, reactor, ca_file)
        self.endpoint = endpoint

    def head(
        self, method: bytes, fields: Iterable[tuple[bytes, bytes]], length: int | None
    ) -> bytes:
        """The request line and header section, ending with the empty line.

        ValueError when a field carries CR, LF or NUL (RFC 9110 section 5.5), which
        would end its line early: checked once on the whole head, whose line ends
        must then be exactly those written here (the request line, ``Host``, each
        field, ``Content-Length``, the empty line), rather than value by value."""
        lines = [method, b" ", self.path, b" HTTP/1.1\r\nHost: ", self.host_header, b"\r\n"]
        ends = 3
        for name, value in fields:
            lines += [name, b": ", value, b"\r\n"]
            ends += 1
        if length is not None:
            lines += [b"Content-Length: ", b"%d" % length, b"\r\n"]
            ends += 1
        lines.append(b"\r\n")
        head = b"".join(lines)
        if head.count(b"\n") != ends or head.count(b"\r") != ends or b"\0" in head:
            raise ValueError("header value contains CR, LF or NUL")
        return head


@implementer(IPushProducer)
class UpstreamResponse:
    """A response whose head has arrived; the body follows through :meth:`deliverBody`."""

    def __init__(self, connection: Connection, code: int, headers: dict[bytes, bytes]) -> None:
        self._connection = connection
        self.code = code
        self._headers = headers
        self._consumer: IProtocol | None = None
        self._pending: list[bytes] = []
        self._ended: Failure | None = None
        #: What the body's deadline runs (``deadline``); None: none is set.
        self._expired: Callable[[], object] | None = None
        self._stopped = False
        self._paused = False

    @property
    def ended(self) -> bool:
        """The whole body has been read (or the transfer broke)."""
        return self._ended is not None

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header field; ``name`` in lower case."""
        return self._headers.get(name)

    def deadline(self, seconds: float, expired: Callable[[], object]) -> None:
        """``expired`` runs ``seconds`` from now unless moved or stopped before, while the
        body lasts (a reader's inactivity bound, its grace): on the connection's one
        timer (``aigw/deadline.py``), as the head's deadline is, so that reading a body
        arms no ``DelayedCall`` of its own per call.  Nothing once the body has ended."""
        if self._ended is None:
            self._expired = expired
            self._connection.body_deadline(seconds)

    def stop_deadline(self) -> None:
        """No deadline for the body (for now)."""
        if self._ended is None:
            self._expired = None
            self._connection.stop_deadline()

    def _deadline_passed(self) -> None:
        expired = self._expired
        if expired is not None and self._ended is None:
            self._expired = None
            expired()

    def deliverBody(self, protocol: IProtocol) -> None:
        """Send the body to ``protocol`` (chunks already read first)."""
        self._consumer = protocol
        protocol.makeConnection(self)  # type: ignore[arg-type]
        pending, self._pending = self._pending, []
        for chunk in pending:
            if self._stopped:  # the reader stopped us (connectionMade may)
                break
            protocol.dataReceived(chunk)
        if self._ended is not None:
            self._consumer = None
            protocol.connectionLost(self._ended)

    def _body(self, chunk: bytes) -> None:
        if self._stopped:
            return
        if self._consumer is None:
            self._pending.append(chunk)
        else:
            self._consumer.dataReceived(chunk)

    def _end(self, reason: Failure) -> None:
        if self._ended is not None:
            return
        self._ended = reason
        self._expired = None
        # A body can complete within the read its reader paused in: the connection
        # reads again before it serves the pool's next request.
        self.resumeProducing()
        # The reader's transport is this response: letting go of the reader once it
        # has heard the end leaves no cycle, so the exchange (reader, sink, answer)
        # is freed when it is done rather than at the next cyclic collection.
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.connectionLost(reason)

    # IPushProducer, for the body's reader: pausing stops reading the backend's socket
    # (TCP's window makes it wait); stopping drops the link.  Once the body has ended
    # the connection may serve another request: pausing then touches nothing.
    def stopProducing(self) -> None:
        self._stopped = True
        if self._ended is None:
            self._connection.abort()

    def pauseProducing(self) -> None:
        if self._ended is None and not self._paused:
            self._paused = True
            self._connection.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        if self._paused:
            self._paused = False
            if not self._connection.lost:
                self._connection.transport.resumeProducing()  # type: ignore[union-attr]


class Connection(Protocol):
    """One TCP (or TLS) connection to a backend, one exchange at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._parser: Any = None
        self._waiting: Deferred[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._fields: dict[bytes, bytes] = {}
        self._head_bytes = 0
        self._field_count = 0
        self._head_done = False
        self._complete = False
        self._keep_alive = False
        self._close_delimited = False
        self._surplus = False
        self._interim = False
        self._before_head = 0
        self._chunks: list[bytes] = []
        #: The one timer of the connection: the answer's head (``request``), then its
        #: body's (``UpstreamResponse.deadline``); one pending call per connection, not
        #: one per request (``aigw/deadline.py``).
        self._deadline = Deadline(pool.clock, self._deadline_passed)
        #: We dropped it (cancelled, timed out, broken reply, shutdown): not "lost".
        self._dropped = False
        self.lost = False
        #: Exchanges this connection completed; a request on one that did is a reuse.
        self.served = 0
        self._reused = False
        #: When aigw closes it if still idle (clock seconds), set as it goes idle.
        self.idle_until = 0.0

    def connectionMade(self) -> None:
        # One write per request (head and body together), sent at the end of the
        # reactor iteration without waiting for writability (aigw/tcp_writes.py), and
        # not held back by Nagle's algorithm.
        batch_writes(self.transport)
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)

    def request(
        self, head: bytes, body: bytes | None, timeout: float | None = None
    ) -> Deferred[UpstreamResponse]:
        """Write one request; the Deferred fires with the response once its head is in,
        or fails with TimeoutError when ``timeout`` seconds pass before that."""
        self._parser = httptools.HttpResponseParser(self)
        if timeout is not None:
            self._deadline.start(timeout)
        self._fields = {}
        self._head_bytes = self._field_count = 0
        self._head_done = self._complete = self._keep_alive = self._close_delimited = False
        self._surplus = self._interim = False
        self._before_head = 0
        self._reused = self.served > 0
        self._response = None
        self._waiting = Deferred(self._cancelled)
        assert self.transport is not None
        self.transport.write(head + body if body else head)
        send_now(self.transport)
        return self._waiting

    def _cancelled(self, waiting: Deferred[UpstreamResponse]) -> None:
        self.stop_deadline()
        self.abort()

    def _deadline_passed(self) -> None:
        """The head's deadline until the head is in; then the body's, its reader's."""
        response = self._response
        if response is None:
            self._broken(TimeoutError("no response head within the timeout"))
        else:
            response._deadline_passed()

    def body_deadline(self, seconds: float) -> None:
        """The body being read has a deadline ``seconds`` from now (``UpstreamResponse``)."""
        self._deadline.start(seconds)

    def stop_deadline(self) -> None:
        """No deadline for now (the head is in, the body ended, or its reader says so)."""
        self._deadline.stop()

    def abort(self) -> None:
        if self.transport is not None and not self.lost:
            self._dropped = True
            self.transport.abortConnection()  # type: ignore[attr-defined]

    # httptools callbacks: they only record; dataReceived acts once feed_data returns,
    # so nothing runs re-entrantly inside the parser.
    def on_message_begin(self) -> None:
        if self._complete:  # a second response to one request: framing is off
            self._surplus = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._surplus:
            return
        self._head_bytes += len(name) + len(value) + 4
        self._field_count += 1
        if self._head_bytes > MAX_HEAD_BYTES or self._field_count > MAX_HEADER_FIELDS:
            raise ProtocolViolation("response head too large")
        self._fields.setdefault(name.lower(), value)

    def on_headers_complete(self) -> None:
        if self._surplus:
            return
        if 100 <= self._parser.get_status_code() < 200:
            # RFC 9110 section 15.2: an interim response; the final one follows.
            self._interim = True
            self._fields, self._head_bytes, self._field_count = {}, 0, 0
            return
        self._head_done = True
        self._keep_alive = self._parser.should_keep_alive()
        # RFC 9112 section 6.3: no Content-Length and no chunked coding means the
        # body ends when the connection does.
        self._close_delimited = (
            b"content-length" not in self._fields and b"transfer-encoding" not in self._fields
        )

    def on_body(self, body: bytes) -> None:
        if not self._surplus:
            self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._complete = True

    def dataReceived(self, data: bytes) -> None:
        if self._parser is None or self._complete:
            self.abort()  # bytes nobody asked for: the framing cannot be trusted
            return
        try:
            self._parser.feed_data(data)
            if not self._head_done:
                # httptools holds a field until its line ends: bound what comes
                # before the head is complete (interim responses included).
                self._before_head += len(data)
                if self._before_head > MAX_HEAD_BYTES:
                    raise ProtocolViolation("response head too large")
        except (httptools.HttpParserError, ProtocolViolation) as error:
            self._broken(ProtocolViolation(str(error) or type(error).__name__))
            return
        waiting = None
        if self._head_done and self._response is None:
            self._deadline.stop()
            code = self._parser.get_status_code()
            self._response = UpstreamResponse(self, code, self._fields)
            waiting, self._waiting = self._waiting, None
            if waiting is None or waiting.called:  # cancelled: the connection is going
                return
        response = self._response
        if response is None:
            return
        # What arrived is handed over before the response itself, so a reader of
        # a body that is already complete starts no inactivity timer.
        chunks, self._chunks = self._chunks, []
        for chunk in chunks:
            response._body(chunk)
        if self._complete and not self.lost:
            self._deadline.stop()  # the body's: the connection may serve another request now
            self._parser = None
            self._response = None  # an idle connection keeps nothing of its last exchange
            self.served += 1
            if self._keep_alive and not self._surplus:
                self._pool.release(self, keep_alive_hint(self._fields.get(b"keep-alive")))
            else:
                self.transport.loseConnection()
            response._end(_RESPONSE_DONE)
        if waiting is not None:
            waiting.callback(response)

    def _broken(self, error: Exception) -> None:
        self.stop_deadline()
        failure = Failure(error)
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.errback(failure)
        elif self._response is not None:
            self._response._end(failure)
        self._response = None
        self.abort()

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        self.lost = True
        self._deadline.cancel()
        self._pool.forget(self)
        if self._parser is None:
            return  # idle, or the exchange already ended
        self._parser = None
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            if not waiting.called:
                if self._reused and self._before_head == 0 and not self._dropped:
                    # Reported by the pool, which alone knows if it is sent again.
                    lost: ConnectionLost = StaleConnection(
                        f"before the response: {reason.getErrorMessage()}"
                    )
                else:
                    self._report_lost("before the response", reason)
                    lost = ConnectionLost("connection lost before the response")
                waiting.errback(Failure(lost))
            return
        response, self._response = self._response, None
        if response is not None:
            if self._head_done and self._close_delimited:
                response._end(Failure(PotentialDataLoss("body ended with the connection")))
            else:
                self._report_lost("in the body", reason)
                response._end(Failure(ConnectionLost("connection lost in the body")))

    def _report_lost(self, when: str, reason: Failure) -> None:
        if not self._dropped:
            self._pool.report("lost", f"{when}: {reason.getErrorMessage()}")


class _OneConnection(Factory):
    """The factory of one connection attempt: builds ``connection``.

    Twisted's ``connectProtocol`` does this with a class made per call, and a class
    is a reference cycle: each closed upstream connection then waited for a full
    collection of the cyclic garbage collector (``make soak``, docs/performance.md).
    """

    noisy = False  # Twisted logs "Starting/Stopping factory" for every connection otherwise

    def __init__(self, connection: Connection) -> None:
        self._connection: Connection | None = connection

    def buildProtocol(self, addr: Any) -> Connection | None:
        # Let go of it: Twisted's connector and transport hold each other (and this
        # factory) until a collection, the connection need not wait with them.
        connection, self._connection = self._connection, None
        return connection


class ConnectionPool:
    """Idle connections to one backend, newest first, at most ``max_idle`` kept, each
    for at most ``keep_alive`` seconds (less when the backend says so).

    ``observer`` hears of connections opened, failed and lost (see the module
    docstring), as connections to ``backend``.
    """

    log = Logger()

    def __init__(
        self,
        target: Target,
        max_idle: int,
        clock: IReactorTime,
        *,
        keep_alive: float,
        observer: GatewayObserver | None = None,
        backend: str = "",
    ) -> None:
        self.target = target
        self.clock = clock
        self._observer = observer
        self._backend = backend
        self._max_idle = max_idle
        self._keep_alive = keep_alive
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        # Connection attempts under way: close() cancels them too.
        self._connecting: set[Deferred[Any]] = set()
        # One timer for the whole idle list, due when its first connection expires:
        # not one per connection re-armed on every request.
        self._sweep: IDelayedCall | None = None

    async def request(
        self,
        head: bytes,
        body: bytes | None,
        answer_within: float | None = None,
        replayable: Callable[[], bool] = _never,
    ) -> UpstreamResponse:
        """Send one request on an idle connection, or on a new one (connecting is
        bounded by the endpoint's own timeout; ``answer_within`` seconds bound the
        wait for the response head).

        A request lost unanswered on a reused connection (:class:`StaleConnection`)
        is sent once more, on a new connection, when ``replayable()`` says it may
        be: RFC 9112 section 9.3.1 lets a client retry automatically only a request
        it knows to be idempotent (RFC 9110 section 9.2.2), since the backend may
        have acted on the first copy.  It is asked only then, so a caller may
        decide by reading the body.
        """
        connection = self._reusable()
        if connection is not None:
            try:
                return await connection.request(head, body, answer_within)
            except StaleConnection as stale:
                # Counted apart from "lost": the request was recovered, not failed.
                replay = replayable()
                self.report("replayed" if replay else "lost", stale.detail)
                if not replay:
                    raise
        connection = await self._connect()
        return await connection.request(head, body, answer_within)

    def _reusable(self) -> Connection | None:
        """The newest idle connection still open and within its keep-alive time."""
        now = self.clock.seconds()
        while self._idle:
            connection = self._idle.pop()
            if connection.lost:
                continue
            if connection.idle_until <= now:  # the sweep is late: the reactor was busy
                connection.transport.loseConnection()  # type: ignore[union-attr]
                continue
            return connection
        return None

    async def _connect(self) -> Connection:
        connection = Connection(self)
        connecting: Deferred[Any] = self.target.endpoint.connect(_OneConnection(connection))
        self._connecting.add(connecting)
        try:
            await connecting
        except (CancelledError, ConnectingCancelledError):
            raise  # close() at shutdown, or the caller gave up: not the backend's doing
        except Exception as error:
            self.report("failed", str(error) or type(error).__name__)
            raise
        finally:
            self._connecting.discard(connecting)
        self.report("opened")
        self._open.add(connection)
        return connection

    def report(self, state: ConnectionState, detail: str = "") -> None:
        """Tell the observer about a connection to the backend (once per connection)."""
        if self._observer is not None:
            self._observer.upstream_connection(UpstreamConnection(self._backend, state, detail))

    def release(self, connection: Connection, hint: float | None = None) -> None:
        """A connection whose exchange is complete: kept idle for ``keep_alive``
        seconds, or ``hint`` (the backend's ``Keep-Alive: timeout``) less the margin
        when that is sooner; closed at once when there is no time or no room."""
        lifetime = self._keep_alive
        if hint is not None:
            lifetime = min(lifetime, hint - KEEP_ALIVE_MARGIN)
        if lifetime <= 0 or len(self._idle) >= self._max_idle:
            connection.transport.loseConnection()  # type: ignore[union-attr]
            return
        connection.idle_until = self.clock.seconds() + lifetime
        self._idle.append(connection)
        if self._sweep is None:
            self._sweep = self.clock.callLater(lifetime, self._expire)
        elif self._sweep.getTime() > connection.idle_until:  # a shorter hint than the rest
            self._sweep.reset(lifetime)

    def _expire(self) -> None:
        """Close the idle connections whose time is up; come back for the next one."""
        self._sweep = None
        now = self.clock.seconds()
        expired = [c for c in self._idle if c.idle_until <= now]
        self._idle = [c for c in self._idle if c.idle_until > now]
        for connection in expired:
            connection.transport.loseConnection()  # type: ignore[union-attr]
        if self._idle:
            due = min(connection.idle_until for connection in self._idle)
            self._sweep = self.clock.callLater(due - now, self._expire)

    def forget(self, connection: Connection) -> None:
        self._open.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)

    def close(self) -> None:
        """Drop every connection (shutdown): idle ones and those mid-exchange."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._idle.clear()
        for connecting in list(self._connecting):
            connecting.cancel()
        for connection in list(self._open):
            connection.abort()
