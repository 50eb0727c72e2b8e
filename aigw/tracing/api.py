"""The tracing seam: a span per MCP request, a child span per upstream call.

The gateway starts a ``RequestSpan`` in ``Gateway.handle_request`` and an
``UpstreamSpan`` around each upstream post in ``Exchange.request``; each span's
``context`` is what the work done for it continues (``traceparent`` upstream).
``NoTracer`` (tracing off, the default) records nothing and passes the
client's context on unchanged (W3C Trace Context §3.2: a participant that does
not trace still propagates); it allocates nothing when the client sent none.
``otel.OTelTracer`` records with OpenTelemetry.  A shared piece: it imports
none of aigw's layers.
"""

from __future__ import annotations

from typing import Protocol

from aigw.events import Outcome
from aigw.tracing.context import TraceContext


class RequestSpan(Protocol):
    """One client request; finished once, with what ``RequestFinished`` reports."""

    @property
    def context(self) -> TraceContext | None: ...

    def finish(
        self, backend: str | None, name: str | None, outcome: Outcome, error_code: int | None
    ) -> None: ...


class UpstreamSpan(Protocol):
    """One request to one backend; finished with its HTTP status or its failure."""

    @property
    def context(self) -> TraceContext | None: ...

    def finish(self, status: int | None, error: str | None) -> None: ...


class Tracer(Protocol):
    def request(self, parent: TraceContext | None, method: str) -> RequestSpan: ...

    def upstream(self, parent: TraceContext | None, backend: str, method: str) -> UpstreamSpan: ...


class Untraced:
    """A span nothing records: its context is its parent's, passed on as it came."""

    __slots__ = ("context",)

    def __init__(self, context: TraceContext | None) -> None:
        self.context = context

    def finish(self, *args: object, **kwargs: object) -> None:
        pass


#: The span of a request that came without a trace context, when tracing is off.
NO_SPAN = Untraced(None)


class NoTracer:
    """Tracing off: nothing recorded, the client's trace context forwarded unchanged."""

    def request(self, parent: TraceContext | None, method: str) -> RequestSpan:
        return NO_SPAN if parent is None else Untraced(parent)

    def upstream(self, parent: TraceContext | None, backend: str, method: str) -> UpstreamSpan:
        return NO_SPAN if parent is None else Untraced(parent)
