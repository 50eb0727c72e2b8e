"""The HTTP server facing clients, with bounds on what a client can make it hold.

Twisted's ``Site`` buffers whole request bodies and keeps idle connections for
12 hours by default; a gateway in front of sensitive servers cannot.  This
module bounds body size (413 before the body is read when Content-Length says
so, and while reading when it does not), header size and count (431, RFC 6585
§5; 414 for the request line), idle time, the time a request head may take
(408, RFC 9110 §15.5.9: the idle timer restarts at every byte, so a head sent a
byte at a time would never end otherwise), and tracks connections so that
SIGTERM can drain in-flight requests and then close the rest.  Each refusal is
a short JSON body with ``Connection: close``, then the connection closes.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable
from typing import Any

import twisted.web.http
import twisted.web.server
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from aigw.config import ServerConfig
from aigw.deadline import Deadline
from aigw.tcp_writes import batch_writes, send_now


def _skip_form_parsing() -> dict[str, Any]:
    """Twisted parses every POST's Content-Type with ``email.message`` to look for form
    bodies, which aigw never reads: about 8% of a proxied call, and ``email.policy`` with
    its header parsers imported on the first POST (0.4 MiB).  Twisted releases whose
    ``Site`` takes ``parsePOSTFormSubmission`` skip it; on older ones the parse, a pure
    function of a header value that is nearly always the same few bytes, is memoized.
    The ``Site`` keyword arguments that say so."""
    if "parsePOSTFormSubmission" in inspect.signature(Site.__init__).parameters:
        return {"parsePOSTFormSubmission": False}
    parse = getattr(twisted.web.http, "_parseContentType", None)
    if parse is not None and not hasattr(parse, "cache_info"):
        twisted.web.http._parseContentType = functools.lru_cache(maxsize=128)(parse)
    return {}


_SITE_OPTIONS = _skip_form_parsing()


class _DatePerSecond:
    """The ``Date`` header's value (RFC 9110 §6.6.1: a time to the second), formatted once
    a second instead of for every response: ``twisted.web.server.Request.process``
    calls ``datetimeToString()`` for each request (``gmtime`` and a bytes format, 1.4% of
    the reactor's time at concurrency 32).  Called with a time, it formats that one."""

    def __init__(self, format_date: Callable[..., bytes]) -> None:
        self.format_date = format_date
        self._second = -1
        self._value = b""

    def __call__(self, seconds: float | None = None) -> bytes:
        if seconds is not None:
            return self.format_date(seconds)
        now = int(time.time())
        if now != self._second:
            self._value = self.format_date(now)
            self._second = now
        return self._value


def _date_once_a_second() -> None:
    current = getattr(twisted.web.server, "datetimeToString", None)
    if current is not None and not isinstance(current, _DatePerSecond):
        twisted.web.server.datetimeToString = _DatePerSecond(current)  # type: ignore[attr-defined]


_date_once_a_second()


def json_error_bytes(status: int, error: str, description: str) -> bytes:
    """The JSON body of every error aigw answers at the HTTP level."""
    return json.dumps({"error": error, "error_description": description}).encode()


class BoundedRequest(Request):
    """A request that refuses bodies over the site's limit and remembers when it began.

    ``aigw_fields`` collects what the access log line reports beyond method,
    path and status (user ``sub``, MCP method, tool), filled in by later layers.
    """

    channel: BoundedChannel
    _refused = False
    _body_bytes = 0

    def __init__(self, channel: HTTPChannel, *args: object, **kwargs: object) -> None:
        # The (deprecated) ``queued`` argument HTTPChannel may pass is not forwarded.
        super().__init__(channel)  # type: ignore[no-untyped-call]
        site: BoundedSite = channel.site  # type: ignore[attr-defined]
        self.started = site.clock.seconds()
        self.aigw_fields: dict[str, Any] = {}

    def _limit(self) -> int:
        return self.channel.site.limits.max_body_bytes

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.channel.site.limits.max_body_bytes:
            self._refuse_too_large()
            return
        super().gotLength(length)  # type: ignore[no-untyped-call]

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self.channel.site.limits.max_body_bytes:
            self._refuse_too_large()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def parseCookies(self) -> None:
        """Leave the ``Cookie`` header unparsed (``received_cookies`` stays empty):
        Twisted's ``requestReceived`` parses it for every request, and aigw, a bearer
        token resource server (RFC 6750 §2.1), reads no cookie.  A header lookup and
        a call fewer per request."""

    def finish(self) -> None:
        """Send the answer before Twisted's bookkeeping of ``finish`` (the access log, the
        channel's clean-up) when it is whole already: written, with nothing chunked to end
        (aigw/tcp_writes.py ``send_now``); else once ``finish`` wrote the rest."""
        # Twisted's finish lets go of the channel (``_cleanup``): keep its transport.
        transport = None if self._disconnected else self.channel.transport
        whole = self.startedWriting and not self.chunked
        if whole and transport is not None:
            send_now(transport)
        super().finish()  # type: ignore[no-untyped-call]
        if not whole and transport is not None:
            send_now(transport)

    def _refuse_too_large(self) -> None:
        """Answer 413 at once and drop the connection: the rest of the body is never read."""
        self._refused = True
        body = json_error_bytes(
            413, "request_too_large", f"request body exceeds {self._limit()} bytes"
        )
        self.channel.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"Content-Type: application/json\r\n"
            b"Connection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.code = 413
        self.channel.site.log_access(self, 413)
        self.channel.transport.loseConnection()  # type: ignore[union-attr]


#: The refusals a channel answers before any resource sees the request: reason phrase
#: and the ``error`` of the JSON body.
_REFUSALS = {
    400: (b"Bad Request", "invalid_request"),
    408: (b"Request Timeout", "request_timeout"),
    414: (b"URI Too Long", "uri_too_long"),
    431: (b"Request Header Fields Too Large", "header_fields_too_large"),
}


class BoundedChannel(HTTPChannel):
    """An HTTPChannel that reports itself to the site and answers bad requests in JSON.

    Its two timers (the head's deadline and Twisted's idle timeout, which
    ``HTTPChannel`` stops at every request's head and starts again once the answer
    is written) are ``Deadline``s: a timer per connection, not one made and
    cancelled per request.
    """

    site: BoundedSite
    #: The deadline of the request head being read (``server.header_timeout``).
    _head_deadline: Deadline
    #: Twisted's idle timeout (``TimeoutMixin``), see setTimeout.
    _idle: Deadline
    _local: IAddress | None = None

    def connectionMade(self) -> None:
        batch_writes(self.transport)
        self._head_deadline = Deadline(self.site.clock, self._head_too_slow)
        self._idle = Deadline(self.site.clock, self.timeoutConnection)
        super().connectionMade()  # type: ignore[no-untyped-call]
        self.site.connections.add(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._head_deadline.cancel()
        self.site.connections.discard(self)
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
        self._idle.cancel()

    def setTimeout(self, period: float | None) -> float | None:
        """``TimeoutMixin.setTimeout`` on a ``Deadline``: same contract (the previous
        period returned, ``None`` stops it), without a timer per request."""
        previous: float | None = self.timeOut
        self.timeOut = period  # type: ignore[assignment]  # Twisted says int; seconds
        if period is None:
            self._idle.stop()
        else:
            self._idle.start(period)
        return previous

    def resetTimeout(self) -> None:
        """``TimeoutMixin.resetTimeout``: restart the idle period, unless it is stopped."""
        if self.timeOut is not None and self._idle.running:
            self._idle.start(self.timeOut)

    def dataReceived(self, data: bytes) -> None:
        # The first byte of a head, on a connection that is answering nothing
        # (pipelined bytes wait in Twisted's buffer and come back through here).
        if not self._head_deadline.running and not self.requests and data:
            self._head_deadline.start(self.site.limits.header_timeout)
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def allHeadersReceived(self) -> None:
        self._head_deadline.stop()
        super().allHeadersReceived()  # type: ignore[no-untyped-call]

    def _head_too_slow(self) -> None:
        limit = self.site.limits.header_timeout
        self._refuse(408, f"the request head took longer than {limit:g} s")

    def getHost(self) -> IAddress:
        """The local address, asked of the socket once: Twisted's ``Request`` asks for it
        on every request, a ``getsockname`` system call each time, and a connection's
        local address does not change."""
        if self._local is None:
            self._local = super().getHost()  # type: ignore[no-untyped-call]
        return self._local

    def lineLengthExceeded(self, line: bytes) -> None:
        """A line longer than the bound: LineReceiver would drop the connection unanswered."""
        self._refuse_oversized_line()

    def _refuse_oversized_line(self) -> None:
        if not self.requests:
            # Nothing of this request read yet (Twisted makes its ``Request`` once the
            # request line is in): the request line itself is too long (RFC 9112 §3:
            # 414 for a request-target longer than the server will parse).
            self._refuse(414, "the request line is too long")
        else:
            self._refuse(431, f"the header fields exceed {self.totalHeadersSize} bytes")

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Twisted's refusal of a request head, told apart.  Twisted counts the head's
        bytes and fields itself as it reads each line, and refuses here the first line
        that takes either over ``totalHeadersSize`` or ``maxHeaders``: those are 431
        (RFC 6585 §5; 414 for the request line), every other refusal a 400.  Reading
        the counts here, rather than checking each line again in ``lineReceived`` and
        ``headerReceived``, keeps the checks Twisted's and the hot path one call per
        line shorter."""
        if self._receivedHeaderSize > self.totalHeadersSize:
            self._refuse_oversized_line()
        elif self._receivedHeaderCount > self.maxHeaders:
            self._refuse(431, "too many header fields")
        else:
            self._refuse(400, "malformed or oversized HTTP request")

    def _refuse(self, status: int, description: str) -> None:
        """Answer ``status`` with a short JSON body and ``Connection: close``, then close."""
        reason, error = _REFUSALS[status]
        body = json_error_bytes(status, error, description)
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % (status, reason, len(body)) + body
        )
        self.loseConnection()  # type: ignore[no-untyped-call]

    def is_idle(self) -> bool:
        """True when no request is being read or answered on this connection."""
        return not self.requests


class BoundedSite(Site):
    """A ``Site`` with aigw's limits, structured access log and connection drain."""

    requestFactory = BoundedRequest
    # A plain HTTP/1.1 channel, not HTTPFactory's HTTP/2-negotiating proxy type.
    protocol = BoundedChannel  # type: ignore[assignment]
    displayTracebacks = False

    def __init__(
        self,
        resource: IResource,
        limits: ServerConfig,
        clock: IReactorTime,
        access_log: bool = True,
        on_request_finished: Callable[[bytes, int], None] | None = None,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            resource, timeout=limits.idle_timeout, reactor=clock, **_SITE_OPTIONS
        )
        self.limits = limits
        self.clock = clock
        self.access_log = access_log
        #: Told the path and status of every request answered (the metrics).
        self.on_request_finished = on_request_finished
        # Made here: a Logger read from a class attribute takes the class's name as its
        # namespace, whatever namespace it was given.
        self.access_logger = Logger(namespace="aigw.access", source=self)
        self.connections: set[BoundedChannel] = set()

    # Returns ``protocol`` above, a BoundedChannel, not HTTPFactory's proxy type.
    def buildProtocol(self, addr: IAddress | None) -> BoundedChannel | None:  # type: ignore[override]
        channel: BoundedChannel | None = super().buildProtocol(addr)  # type: ignore[no-untyped-call]
        if channel is None:
            return None
        channel.totalHeadersSize = self.limits.max_header_bytes
        # One line may be as long as the whole header block, and no longer.
        channel.MAX_LENGTH = self.limits.max_header_bytes
        channel.maxHeaders = self.limits.max_headers
        return channel

    def startFactory(self) -> None:
        """No access-log file and no once-a-second date timer: logging goes to twisted.logger."""

    def stopFactory(self) -> None:
        """Nothing to close: see startFactory."""

    def log(self, request: Request) -> None:  # type: ignore[override]
        """Called by Twisted when a request finishes."""
        self.log_access(request, request.code)

    def log_access(self, request: Request, status: int) -> None:
        """One structured line per request: what journald, JSON and text observers need."""
        if self.on_request_finished is not None:
            self.on_request_finished(request.path or b"", status)
        if not self.access_log:
            return
        started = getattr(request, "started", None)
        duration_ms = (
            round((self.clock.seconds() - started) * 1000.0, 3) if started is not None else None
        )
        fields = getattr(request, "aigw_fields", {})
        method = request.method.decode("latin-1", "replace")
        path = (request.path or b"").decode("latin-1", "replace")
        extra = "".join(f" {key}={value}" for key, value in fields.items())
        self.access_logger.info(
            "{method} {path} {status} {duration_ms}ms{extra}",
            method=method,
            path=path,
            status=status,
            duration_ms=duration_ms,
            extra=extra,
            access=True,
            **fields,
        )

    def drain(self, timeout: float) -> Deferred[None]:
        """Close idle connections now, wait up to ``timeout`` for busy ones, then abort them.

        Called after the listeners stopped accepting (SIGTERM): in-flight
        requests get a bounded time to finish.
        """
        for channel in list(self.connections):
            if channel.is_idle():
                channel.transport.loseConnection()  # type: ignore[union-attr]
            else:
                # Let the current response finish, then close instead of keeping alive.
                channel.persistent = False
        if not self.connections:
            return succeed(None)
        done: Deferred[None] = Deferred()
        deadline = self.clock.seconds() + timeout

        def check() -> None:
            if not self.connections:
                done.callback(None)
                return
            if self.clock.seconds() >= deadline:
                for channel in list(self.connections):
                    channel.transport.abortConnection()  # type: ignore[union-attr]
                done.callback(None)
                return
            for channel in list(self.connections):
                if channel.is_idle():
                    channel.transport.loseConnection()  # type: ignore[union-attr]
            self.clock.callLater(0.05, check)

        check()
        return done
