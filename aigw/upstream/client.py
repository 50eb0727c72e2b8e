"""One upstream MCP server, spoken to over Streamable HTTP.

Each backend gets its own pool of persistent connections
(:mod:`aigw.upstream.connection`) and a bound on concurrent requests.  Replies are
read incrementally: a JSON body is collected (with a size bound), an SSE body
is parsed event by event and each JSON-RPC message is handed on as soon as it
arrives, so progress notifications reach the client when the upstream sends
them (MCP 2025-11-25 basic/transports, "Sending Messages to the Server").

What is sent upstream is built here and nowhere else: the client's
``Authorization``, ``Cookie`` and hop-by-hop headers are never among them (MCP
Authorization, "Access Token Privilege Restriction": token passthrough is
forbidden); only what the backend's credentials give is added (``credentials.py``:
static headers, the gateway's own or an exchanged token, claims of the verified token).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, TimeoutError
from twisted.internet.error import ConnectError, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from aigw.config import BackendConfig
from aigw.events import GatewayObserver
from aigw.principal import Principal
from aigw.protocol import jsonrpc, replay
from aigw.protocol.sse import SSEError, SSEParser
from aigw.upstream.api import (
    BodyReader,
    HeaderFields,
    MessageSink,
    Reply,
    UpstreamCredentials,
    UpstreamError,
    UpstreamSessionGone,
    ignore,
)
from aigw.upstream.connection import (
    ConnectionPool,
    ProtocolViolation,
    StaleConnection,
    Target,
    UpstreamResponse,
)
from aigw.upstream.credentials import build_credentials

MAX_ERROR_EXCERPT = 512
#: The most of a body aigw reads only to throw away (202, 404, wrong type) before
#: hanging up instead: discarding forever is no better than keeping.
MAX_DISCARD_BYTES = 64 * 1024
FINISH_GRACE_SECONDS = 5.0

_ACCEPT_ANY = b"application/json, text/event-stream"


def _always() -> bool:
    return True


class _BoundedRead(Protocol):
    """Reads at most ``limit`` bytes of a body aigw only logs or drops, within ``timeout``
    (the response's deadline, ``UpstreamResponse.deadline``).

    Past either bound the transfer is aborted; ``done`` fires with what was read.
    """

    def __init__(self, limit: int, timeout: float) -> None:
        self._limit = limit
        self._timeout = timeout
        self._chunks: list[bytes] = []
        self._size = 0
        #: Cancelling it (the caller gave up) drops the connection rather than read on.
        self.done: Deferred[bytes] = Deferred(lambda _: self._abort())

    def connectionMade(self) -> None:
        cast(UpstreamResponse, self.transport).deadline(self._timeout, self._abort)

    def dataReceived(self, data: bytes) -> None:
        if self._size < self._limit:
            self._chunks.append(data[: self._limit - self._size])
        self._size += len(data)
        if self._size > self._limit:
            self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            cast(IPushProducer, self.transport).stopProducing()

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        # The body has ended: the response's deadline with it.
        if not self.done.called:
            self.done.callback(b"".join(self._chunks))


def _nowhere(message: Any) -> None:
    """Where a reader's messages go once its body has ended: there are none."""


class _BodyReader(Protocol):
    """Reads one reply body, JSON or SSE, handing messages on as they complete.

    Its inactivity bound and its grace after ``finish`` are the response's deadline
    (``UpstreamResponse.deadline``): moved by recording when it falls on the
    connection's one timer, rather than a ``DelayedCall`` of its own made, reset and
    cancelled per call (``bench/micro.py`` "upstream: one SSE reply")."""

    def __init__(
        self,
        upstream: Upstream,
        is_sse: bool,
        sink: MessageSink,
        done: Deferred[None],
        inactivity: float | None,
        session_id: str | None,
        on_event_id: Callable[[str], None] | None = None,
    ) -> None:
        self._upstream = upstream
        self.session_id = session_id
        self._inactivity = inactivity
        self._limit = upstream.config.max_message_bytes
        self._sse = SSEParser(self._limit) if is_sse else None
        self._sink = sink
        self._done = done
        self._chunks: list[bytes] = []
        self._size = 0
        #: The response's deadline is set (``_arm``, ``finish``) and not stopped since.
        self._armed = False
        self._lost = False
        self._stopped = False
        self._paused = False
        #: SSE events that were not JSON: the first is logged, the count at the end.
        self._skipped = 0
        self.last_event_id: str | None = None
        self._on_event_id = on_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in milliseconds the stream last set (its ``retry``
        field, ASCII digits only: ``protocol/sse.py``), None if none."""
        return self._sse.retry if self._sse is not None else None

    def connectionMade(self) -> None:
        if self._stopped:
            self.stop()  # stopped before the body began (see stop)
            return
        if self._paused:
            cast(IPushProducer, self.transport).pauseProducing()
        if not cast(UpstreamResponse, self.transport).ended:  # else nothing to wait for
            self._arm()

    def pause(self) -> None:
        """The client this reply feeds is behind (``gateway/flow.py``): stop reading
        the backend's socket.  The inactivity timer keeps running, so a client that
        reads nothing for the backend's ``timeout`` frees the connection and its slot."""
        if self._paused or self._lost or self._done.called:
            return  # done: what still comes is discarded (finish), not the client's
        self._paused = True
        if self.transport is not None:
            cast(IPushProducer, self.transport).pauseProducing()

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self.transport is not None:
            cast(IPushProducer, self.transport).resumeProducing()

    def _arm(self) -> None:
        """(Re)start the inactivity deadline: an upstream that goes silent is cut off."""
        timeout = self._inactivity
        if timeout is None:
            return
        self._armed = True
        cast(UpstreamResponse, self.transport).deadline(timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._armed:
            self._armed = False
            cast(UpstreamResponse, self.transport).stop_deadline()

    def _timed_out(self) -> None:
        self._armed = False
        if self._paused:
            detail = "the client read nothing within the timeout"
        else:
            detail = "no data within the timeout"
        self._fail(UpstreamError(self._upstream.name, "timeout", detail))

    def _fail(self, error: UpstreamError) -> None:
        self._disarm()
        if not self._done.called:
            self._done.errback(error)
        self.stop()

    def stop(self) -> None:
        """Stop reading: the connection is dropped (cancellation, client gone).

        Callers get the reader before the body is delivered to it; a stop then is
        carried out as soon as the body begins."""
        self._stopped = True
        if self.transport is not None:
            # The response body's transport: an IPushProducer (twisted.web.iweb.IResponse).
            cast(IPushProducer, self.transport).stopProducing()

    def finish(self) -> None:
        """The caller has what it waited for: end the exchange now.

        The rest of the body is read and discarded so the connection can go
        back to the pool; an upstream that keeps the stream open is cut off
        after a short grace period.
        """
        self._disarm()
        if not self._done.called:
            self._done.callback(None)
        self.resume()  # the rest is read to be discarded, whoever is behind
        if not self._lost:
            self._armed = True
            cast(UpstreamResponse, self.transport).deadline(FINISH_GRACE_SECONDS, self.stop)

    def dataReceived(self, data: bytes) -> None:
        if self._done.called:
            return
        if self._sse is None:
            # One JSON answer: the backend timeout bounds the whole body, not each
            # pause in it (an answer trickled a byte at a time would never end).
            if not self._armed:
                self._arm()
            self._size += len(data)
            if self._size > self._limit:
                detail = f"reply larger than max_message_bytes ({self._limit})"
                self._fail(UpstreamError(self._upstream.name, "bad_reply", detail))
                return
            self._chunks.append(data)
            return
        try:
            events = self._sse.feed(data)
        except SSEError as error:
            self._fail(UpstreamError(self._upstream.name, "bad_reply", str(error)))
            return
        for event in events:
            if event.event != "message" or not event.data:
                self._moved(event.id)
                continue
            if event.id is not None:
                self.last_event_id = event.id
            try:
                message = jsonrpc.loads(event.data)
            except ValueError:
                self._skipped += 1
                if self._skipped == 1:  # a stream may carry them for ever: not a line each
                    self._upstream.log.warn(
                        "backend {backend} sent an SSE event that is not JSON; skipped "
                        "(more on this reply are counted, not logged)",
                        backend=self._upstream.name,
                    )
                continue
            self._arm()  # a message is progress; comments and other events are not
            self._sink(message)
            if self._done.called:
                return
        # An event of an id and no data line is not dispatched (WHATWG §9.2.6), but its
        # id is the stream's all the same: seen here when it ended the chunk.
        self._moved(self._sse.last_event_id)

    def _moved(self, event_id: str | None) -> None:
        """An event without a message (a priming event: an id and empty data, MCP
        2025-11-25 basic/transports, SEP-1699) may still move the last event id."""
        if not event_id or event_id == self.last_event_id:
            return
        self.last_event_id = event_id
        if self._on_event_id is not None:
            self._on_event_id(event_id)

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        self._lost = True
        self._disarm()
        if self._skipped > 1:
            self._upstream.log.warn(
                "backend {backend} sent {count} SSE events that are not JSON on one reply; skipped",
                backend=self._upstream.name,
                count=self._skipped,
            )
        # The sink is the caller's (Collector.sink, whose collector holds this reader):
        # nothing is delivered after the end, and letting go of it leaves no cycle.
        sink, self._sink = self._sink, _nowhere
        if self._done.called:
            return
        if not isinstance(reason.value, ResponseDone | PotentialDataLoss):  # Failure.check is slow
            lost = UpstreamError(self._upstream.name, "unavailable", "connection lost")
            self._done.errback(lost)
            return
        if self._sse is None and self._chunks:
            try:
                message = jsonrpc.loads(b"".join(self._chunks))
            except ValueError:
                not_json = UpstreamError(self._upstream.name, "bad_reply", "reply is not JSON")
                self._done.errback(not_json)
                return
            sink(message)
        if not self._done.called:
            self._done.callback(None)


class Upstream:
    """The client side of one backend; ``observer`` hears of its connections."""

    log = Logger()

    def __init__(
        self,
        config: BackendConfig,
        reactor: Any,
        credentials: UpstreamCredentials | None = None,
        observer: GatewayObserver | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.clock = reactor
        if config.url is None:
            raise ValueError(f"backend {config.name!r} has no url (a stdio backend: see factory)")
        target = Target(config.url, reactor, config.connect_timeout, config.ca_file)
        self.connections = ConnectionPool(
            target,
            config.max_connections,
            reactor,
            keep_alive=config.keep_alive_timeout,
            observer=observer,
            backend=config.name,
        )
        #: Requests in flight (their POSTs and connections): ``max_connections``.
        self._slots = DeferredSemaphore(config.max_connections)
        #: Responses to the backend's requests in flight (``respond``), apart from the
        #: requests: a request's reply may wait for one (a ping, a sampling question
        #: on it), so an answer waiting for a request slot could wait for ever behind
        #: ``max_connections`` such requests.  Bounded on their own, also by
        #: ``max_connections``: at most twice that many POSTs (and connections) to the
        #: backend, streams aside.  Those waiting are bounded above (``gateway/answers.py``).
        self._answer_slots = DeferredSemaphore(config.max_connections)
        self.credentials = credentials or build_credentials(config, reactor)

    def _head(
        self,
        credentials: HeaderFields,
        method: bytes,
        session_id: str | None,
        protocol_version: str | None,
        accept: bytes,
        body: bytes | None,
        extra_headers: dict[bytes, bytes] | None = None,
    ) -> bytes:
        """The request head; a value that cannot go on the wire (a line break, a
        character outside ASCII) refuses the request rather than being altered."""
        fields = [*credentials, (b"Accept", accept)]
        try:
            if body is not None:
                fields.append((b"Content-Type", b"application/json"))
            if protocol_version:
                fields.append((b"MCP-Protocol-Version", protocol_version.encode("ascii")))
            if session_id:
                fields.append((b"Mcp-Session-Id", session_id.encode("ascii")))
            if extra_headers:
                fields.extend(extra_headers.items())
            return self.connections.target.head(method, fields, None if body is None else len(body))
        except ValueError as error:
            raise UpstreamError(self.name, "refused", f"unusable header value: {error}") from None

    async def post(
        self,
        body: bytes,
        sink: MessageSink,
        session_id: str | None = None,
        protocol_version: str | None = None,
        on_reader: Callable[[BodyReader], None] | None = None,
        extra_headers: dict[bytes, bytes] | None = None,
        principal: Principal | None = None,
        slots: DeferredSemaphore | None = None,
    ) -> Reply:
        """POST one JSON-RPC message (or batch); messages of the reply go to ``sink``.

        ``extra_headers``: the 2026-07-28 routing headers (``Mcp-Method``, ``Mcp-Name``).
        ``slots``: the bound it waits on (default: the requests', see ``respond``).

        Returns when the reply ends, or as soon as the sink has what it waits
        for (it may call ``reader.stop()`` through ``on_reader``).
        """
        if slots is None:
            slots = self._slots
        if slots.tokens:
            # A free slot is taken as DeferredSemaphore.acquire would, without the
            # Deferred it makes and fires at once (one per proxied call).
            slots.tokens -= 1
        else:
            await slots.acquire()
        try:
            credentials = await self.credentials.headers(principal)
            try:
                head = self._head(
                    credentials,
                    b"POST",
                    session_id,
                    protocol_version,
                    _ACCEPT_ANY,
                    body,
                    extra_headers,
                )
                response = await self._send(head, body, replayable=lambda: replay.replayable(body))
                return await self._read(response, session_id, sink, on_reader, sent=body)
            except UpstreamError as error:
                if error.status == 401:
                    # RFC 6750 §3.1 invalid_token: the credentials decide (a user's own
                    # token is forgotten, and the user sent to authorize again).
                    await self.credentials.refused(principal)
                raise
        finally:
            slots.release()

    async def respond(
        self,
        body: bytes,
        session_id: str | None,
        protocol_version: str | None,
        principal: Principal | None = None,
    ) -> None:
        """POST a response to the backend's request, or a cancellation, on the answer slots."""
        slots = self._answer_slots
        await self.post(body, ignore, session_id, protocol_version, None, None, principal, slots)

    async def listen(
        self,
        body: bytes,
        sink: MessageSink,
        protocol_version: str,
        extra_headers: dict[bytes, bytes],
        on_reader: Callable[[BodyReader], None],
        principal: Principal | None = None,
    ) -> Reply:
        """POST ``subscriptions/listen`` to a 2026-07-28 backend and read its stream for
        as long as it lasts (basic/patterns/subscriptions): no inactivity timeout once
        its head is in (that has the backend's ``timeout``), no request slot held.  A
        reply that is not a stream counts as no stream."""
        credentials = await self.credentials.headers(principal)
        head = self._head(
            credentials, b"POST", None, protocol_version, _ACCEPT_ANY, body, extra_headers
        )
        response = await self._send(head, body, replayable=lambda: replay.replayable(body))
        return await self._read(response, None, sink, on_reader, streaming=True, sent=body)

    async def get_stream(
        self,
        sink: MessageSink,
        session_id: str | None,
        protocol_version: str | None,
        last_event_id: str | None,
        on_reader: Callable[[BodyReader], None],
        principal: Principal | None = None,
        on_event_id: Callable[[str], None] | None = None,
    ) -> Reply:
        """Open the GET SSE stream (MCP basic/transports "Listening for Messages"):
        its head within the backend's ``timeout``, its body for as long as it lasts;
        ``on_event_id``: an event moved its last event id without a message.

        A backend answering 405 has no stream; that is reported as a Reply
        with status 405 and no messages.
        """
        # UTF-8, as an EventSource sends it (WHATWG HTML §9.2.4 "reestablish the
        # connection"): an id the backend wrote in another script comes back as written.
        # The SSE parser yields no id holding NUL, CR or LF (§9.2.6), so none splits the head.
        resume = {b"Last-Event-ID": last_event_id.encode()} if last_event_id else None
        credentials = await self.credentials.headers(principal)
        head = self._head(
            credentials, b"GET", session_id, protocol_version, b"text/event-stream", None, resume
        )
        # GET is safe, hence idempotent (RFC 9110 section 9.2.2): sent again if lost.
        response = await self._send(head, None, replayable=_always)
        return await self._read(
            response, session_id, sink, on_reader, streaming=True, on_event_id=on_event_id
        )

    async def delete(
        self, session_id: str, protocol_version: str | None, principal: Principal | None = None
    ) -> int:
        """End an upstream session (MCP basic/transports "Session Management")."""
        credentials = await self.credentials.headers(principal)
        head = self._head(
            credentials, b"DELETE", session_id, protocol_version, b"application/json", None
        )
        # DELETE is idempotent (RFC 9110 section 9.2.2): sent again if lost.
        response = await self._send(head, None, replayable=_always)
        await self._drain(response)
        return int(response.code)

    async def _send(
        self,
        head: bytes,
        body: bytes | None,
        *,
        replayable: Callable[[], bool],
    ) -> UpstreamResponse:
        """Send a request; the response once its head is in, within the backend's
        ``timeout`` from the moment it is written (connecting has ``connect_timeout``).

        A stream's head is bounded too, only its body may last for ever: MCP
        2025-11-25 basic/transports has a server answer the GET with
        ``text/event-stream`` or 405 ("Listening for Messages from the Server"), and
        basic/lifecycle "Timeouts" asks for a timeout on every request sent, against
        hung connections; a backend that accepts and never answers would otherwise
        hold the connection for ever (RFC 9112 section 9.5 lets a client close one
        it has waited on long enough).  ``replayable``: may it go again on a new
        connection if a kept-alive one is lost unanswered (``ConnectionPool.request``;
        ``protocol/replay.py``)."""
        try:
            return await self.connections.request(head, body, self.config.timeout, replayable)
        except CancelledError:
            raise  # the caller gave up (the connection is aborted): not the backend's doing
        except Exception as error:
            raise self._connection_error(error) from None

    def _connection_error(self, error: BaseException) -> UpstreamError:
        if isinstance(error, TimeoutError):
            return UpstreamError(self.name, "timeout", "no response within the timeout")
        if isinstance(error, StaleConnection):
            detail = "connection closed before any answer; not sent twice (not idempotent)"
            return UpstreamError(self.name, "unavailable", detail)
        if isinstance(error, ConnectError | ConnectionLost | ConnectionDone):
            return UpstreamError(self.name, "unavailable", type(error).__name__)
        if isinstance(error, ProtocolViolation):
            return UpstreamError(self.name, "bad_reply", f"not HTTP/1.1: {error}")
        reasons = getattr(error, "reasons", None)
        if reasons:
            return UpstreamError(
                self.name, "unavailable", "; ".join(r.getErrorMessage() for r in reasons)
            )
        return UpstreamError(self.name, "unavailable", str(error) or type(error).__name__)

    async def _read(
        self,
        response: UpstreamResponse,
        session_id: str | None,
        sink: MessageSink,
        on_reader: Callable[[_BodyReader], None] | None,
        streaming: bool = False,
        sent: bytes | None = None,
        on_event_id: Callable[[str], None] | None = None,
    ) -> Reply:
        """The reply to a request whose body was ``sent`` (None: a GET)."""
        status = response.code
        content_type = (response.header(b"content-type") or b"").decode("latin-1")
        new_session = response.header(b"mcp-session-id")
        reply = Reply(
            status=status,
            session_id=new_session.decode("latin-1") if new_session else session_id,
            content_type=content_type,
        )
        if status == 404 and session_id:
            await self._drain(response)
            raise UpstreamSessionGone(self.name, "session_gone", "upstream session expired")
        if status in (202, 204, 405) or (
            status == 200 and streaming and "event-stream" not in content_type
        ):
            await self._drain(response)
            return reply
        if status >= 400:
            excerpt = await self._excerpt(response)
            if status == 400 and session_id and _names_unknown_session(excerpt):
                # 2025-11-25 basic/transports "Session Management" says 404 for a session
                # the server no longer has; the TypeScript SDK 1.x servers (among them
                # server-everything) answer 400 "No valid session ID provided" instead.
                # Same meaning: a new session is opened (see Exchange.request).
                raise UpstreamSessionGone(self.name, "session_gone", "upstream session unknown")
            answer = _error_answer(excerpt, sent) if status < 500 else None
            if answer is not None:
                # 2026-07-28 basic/transports/streamable-http: a request the server
                # refuses is answered with a 4xx status whose body is the JSON-RPC error
                # response ("Server Validation": 400 and -32020; "Protocol Version
                # Header": 404 and -32601; and so on).  That answer is the backend's
                # word on the request, relayed like any other error response.  Any
                # other error body (no id, as 2025-11-25 has for a refused notification
                # or response, or another id: the Python SDK 1.x answers a session's
                # second GET stream 409 with the id "server-error") answers nothing
                # sent: the HTTP error it comes with is raised, as for a body not JSON.
                sink(answer)
                return reply
            raise UpstreamError(self.name, "http_error", f"HTTP {status}: {excerpt}", status)
        is_sse = content_type.startswith("text/event-stream")
        if not is_sse and not content_type.startswith("application/json"):
            await self._drain(response)
            raise UpstreamError(
                self.name, "bad_reply", f"unexpected content type {content_type or 'none'}"
            )
        done: Deferred[None] = Deferred()
        inactivity = None if streaming else self.config.timeout
        reader = _BodyReader(self, is_sse, sink, done, inactivity, reply.session_id, on_event_id)
        if on_reader is not None:
            on_reader(reader)
        response.deliverBody(reader)
        await done
        return reply

    async def _read_some(self, response: UpstreamResponse, limit: int) -> bytes:
        """At most ``limit`` bytes of the body, within the backend timeout."""
        reader = _BoundedRead(limit, self.config.timeout)
        response.deliverBody(reader)
        return await reader.done

    async def _drain(self, response: UpstreamResponse) -> None:
        await self._read_some(response, MAX_DISCARD_BYTES)

    async def _excerpt(self, response: UpstreamResponse) -> str:
        content = await self._read_some(response, MAX_ERROR_EXCERPT)
        return content.decode("utf-8", "replace")

    async def close(self) -> None:
        self.connections.close()


def _error_answer(text: str, sent: bytes | None) -> dict[str, Any] | None:
    """The JSON-RPC error response in an HTTP error body, if it answers a request of
    ``sent`` (has the id of one); anything else (HTML, an id-less error, another id, a
    truncated body, any body when nothing or no request was sent) is None."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != jsonrpc.JSON_VERSION:
        return None
    error = message.get("error")
    request_id = message.get("id")
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return None
    if not jsonrpc.is_request_id(request_id):
        return None
    if request_id not in _request_ids(sent):
        return None
    return message


def _request_ids(sent: bytes | None) -> list[str | int]:
    """The ids of the requests in a body sent (one message or a batch): what a backend's
    error may answer.  Read again only on this error path; a request aigw sends is its
    own, well formed (its id a string or an integer, never a boolean)."""
    if sent is None:
        return []
    try:
        decoded = json.loads(sent)
    except ValueError:
        return []
    messages = decoded if isinstance(decoded, list) else [decoded]
    return [message["id"] for message in messages if jsonrpc.is_request(message)]


def _names_unknown_session(text: str) -> bool:
    """An id-less JSON-RPC error about the session id (a 400 meaning 404, see _read)."""
    try:
        message = json.loads(text)
    except ValueError:
        return False
    if not isinstance(message, dict) or message.get("id") is not None:
        return False
    error = message.get("error")
    detail = error.get("message") if isinstance(error, dict) else None
    return isinstance(detail, str) and "session" in detail.lower()
