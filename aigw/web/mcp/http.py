"""HTTP pieces shared by both eras of Streamable HTTP at ``mcp_path``.

Refusals, header reading and the reply that turns from JSON into SSE the
moment something must be sent before the answer (MCP basic/transports).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import LoopingCall

from aigw.gateway.flow import Valve
from aigw.protocol import jsonrpc
from aigw.protocol.sse import format_comment, format_event
from aigw.tracing.context import TRACEPARENT, TRACESTATE, TraceContext, from_headers
from aigw.web.request import WebRequest


def accepts(request: WebRequest, *wanted: str) -> bool:
    """Does the Accept header allow every media type in ``wanted``? (RFC 9110 §12.5.1)."""
    values = request.requestHeaders.getRawHeaders(b"accept") or []
    return _accepts(tuple(values), wanted)


@functools.lru_cache(maxsize=256)
def _accepts(values: tuple[bytes, ...], wanted: tuple[str, ...]) -> bool:
    """Memoized: clients send the same few Accept values on every request of the hot path."""
    ranges = set()
    for value in values:
        for item in value.decode("latin-1").split(","):
            media = item.split(";", 1)[0].strip().lower()
            if media:
                ranges.add(media)
    if "*/*" in ranges:
        return True
    return all(w in ranges or w.split("/")[0] + "/*" in ranges for w in wanted)


def header(request: WebRequest, name: bytes) -> str | None:
    values = request.requestHeaders.getRawHeaders(name)
    if not values:
        return None
    return values[-1].decode("latin-1").strip()


def trace_context(request: WebRequest) -> TraceContext | None:
    """The client's W3C trace context (§3.2), None when absent or invalid: one header
    lookup on the hot path when the client sends none, whether or not aigw traces."""
    headers = request.requestHeaders
    traceparent = headers.getRawHeaders(TRACEPARENT)
    if traceparent is None:
        return None  # nor is tracestate read: it means nothing alone (§3.3)
    return from_headers(traceparent, headers.getRawHeaders(TRACESTATE))


def attach_valve(request: WebRequest, valve: Valve) -> Callable[[], None]:
    """Make ``valve`` the producer of ``request``'s body (``gateway/flow.py``): the
    client's socket pauses and resumes what feeds it.  Returns the detach, called
    before the response ends (the connection's next request registers its own)."""

    def detach() -> None:
        valve.clear()
        if request.channel is not None:  # else the client is gone, and the channel too
            request.unregisterProducer()

    if request.channel is None:
        return valve.clear  # the client left already: nothing to pace
    request.registerProducer(valve, True)
    return detach


class Reply:
    """The reply to one POST: JSON until something must be sent early, then SSE.

    Once it is a stream, its ``valve`` is the request's producer: a client that
    reads slowly pauses the upstream readers feeding it (``gateway/flow.py``)."""

    def __init__(self, request: WebRequest) -> None:
        self.request = request
        self.streaming = False
        self.gone = False
        self.on_gone: Callable[[], None] | None = None
        self.valve = Valve()
        self._detach: Callable[[], None] | None = None
        self._released = False
        request.notifyFinish().addErrback(self._client_gone)

    def _client_gone(self, _: object) -> None:
        """The client hung up before its answer: what it asked for is cancelled upstream."""
        self.gone = True
        if self.on_gone is not None:
            self.on_gone()

    def emit(self, message: dict[str, Any]) -> None:
        if self.gone:
            return
        if not self.streaming:
            self.streaming = True
            self.request.setResponseCode(200)
            self.request.setHeader(b"Content-Type", b"text/event-stream")
            self.request.setHeader(b"Cache-Control", b"no-cache, no-transform")
            self.request.setHeader(b"X-Accel-Buffering", b"no")
            if not self._released:  # a late message after the answers: nothing to pace
                self._detach = attach_valve(self.request, self.valve)
        self.request.write(format_event(jsonrpc.dumps(message)))

    def release(self) -> None:
        """Every answer is in: the valve stops being the request's producer, and lets
        go of the readers that fed it."""
        self._released = True
        detach, self._detach = self._detach, None
        if detach is not None:
            detach()
        else:
            self.valve.clear()  # never a stream: the readers joined all the same

    def body(self, messages: list[dict[str, Any]], batch: bool) -> bytes:
        """The final bytes: remaining SSE events, or the JSON document."""
        if self.gone:
            return b""
        if self.streaming:
            return b"".join(format_event(jsonrpc.dumps(m)) for m in messages)
        self.request.setResponseCode(200)
        self.request.setHeader(b"Content-Type", b"application/json")
        document: Any = messages if batch else messages[0]
        return jsonrpc.dumps(document)


#: A comment on an idle stream this often keeps proxies and clients from timing out.
KEEPALIVE_SECONDS = 15.0


class HeldStream(Protocol):
    """A server-to-client stream (the GET stream, a listen) as ``hold_stream`` drives it."""

    on_close: Callable[[], None] | None

    def start(self) -> None: ...

    def close(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


class StreamRegistry(Protocol):
    """Where open streams are known, so shutdown can end them (the Gateway)."""

    def track_stream(self, stream: Any) -> None: ...

    def untrack_stream(self, stream: Any) -> None: ...


def begin_event_stream(request: WebRequest) -> None:
    """The response head of an SSE stream, buffering switched off for proxies."""
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", b"text/event-stream")
    request.setHeader(b"Cache-Control", b"no-cache, no-transform")
    request.setHeader(b"X-Accel-Buffering", b"no")


async def hold_stream(
    request: WebRequest, stream: HeldStream, registry: StreamRegistry, clock: Any
) -> bool:
    """Keep ``stream`` open on ``request`` with keep-alive comments until the client
    or the stream ends it; True when the client went away."""
    closed: Deferred[None] = Deferred()
    gone: list[bool] = []
    keepalive = LoopingCall(lambda: request.write(format_comment("keep-alive")))
    keepalive.clock = clock

    def end(_: object = None) -> None:
        if keepalive.running:
            keepalive.stop()
        stream.close()
        if not closed.called:
            closed.callback(None)

    request.notifyFinish().addErrback(lambda _: gone.append(True)).addBoth(end)
    stream.on_close = end
    registry.track_stream(stream)
    valve = Valve()
    valve.add(stream)
    detach = attach_valve(request, valve)
    try:
        keepalive.start(KEEPALIVE_SECONDS, now=False)
        stream.start()
        await closed
    except CancelledError:
        # The client went away and serve_mcp cancelled the handler before ``end``
        # heard of it (a listen registers late, after its awaits): the stream's
        # end, not an error.  Returning leaves no traceback holding these frames,
        # the stream and its request, for the cyclic collector.
        gone.append(True)
    finally:
        end()
        detach()
        # ``end`` holds the stream and the stream held ``end``: without the cycle the
        # stream, its request and session go when it ends, not at a cyclic collection.
        stream.on_close = None
        registry.untrack_stream(stream)
    return bool(gone)
