"""Spans recorded with the OpenTelemetry SDK and exported over OTLP/HTTP.

Imported only when ``tracing`` is configured (``build_tracer``).  The
``BatchSpanProcessor`` exports from a thread of its own, so the reactor never
waits on the collector: ending a span only queues it (bounded; the SDK drops
spans when the queue is full).  The SDK flushes what is queued at interpreter
exit.  The sampler follows the client's sampled flag and samples
``sample_ratio`` of the traces aigw starts.  No user identity goes into a
span (no ``enduser.id``): traces leave the gateway's trust boundary.

What a client wrote reaches a span only bounded and as UTF-8: a method aigw does not
know is ``_OTHER`` (the OpenTelemetry HTTP conventions' word for an unknown
``http.request.method``), so span names stay few, and a name holding lone surrogates
(``"\\ud800"``: valid JSON text) is escaped (``jsonrpc.reported_text``).  OTLP's protobuf encoding
refuses such a string: in a span's name it failed the export of the whole batch, every
user's spans in it lost, with a traceback.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from aigw.config import TracingConfig
from aigw.events import Outcome
from aigw.protocol.jsonrpc import reported_text
from aigw.protocol.versions import CLIENT_REQUESTS
from aigw.tracing.context import TraceContext

#: The attribute naming the upstream name of what a request is about, by method.
_NAME_ATTRIBUTES = {
    "tools/call": "gen_ai.tool.name",
    "prompts/get": "gen_ai.prompt.name",
    "resources/read": "mcp.resource.uri",
}
#: Outcomes that are not failures of the request.
_FINE: frozenset[Outcome] = frozenset({"ok", "cancelled"})
#: A request method outside ``CLIENT_REQUESTS``, as spans say it.
OTHER_METHOD = "_OTHER"


def _method(method: str) -> str:
    return method if method in CLIENT_REQUESTS else OTHER_METHOD


def otlp_tracer(config: TracingConfig) -> OTelTracer:
    """A tracer exporting to ``config.otlp_endpoint`` in batches."""
    exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, timeout=config.export_timeout)
    return OTelTracer(config, BatchSpanProcessor(exporter))


def _parent_context(parent: TraceContext | None) -> Context | None:
    """The OpenTelemetry context of a remote parent (None: a new trace)."""
    if parent is None:
        return None
    state = TraceState.from_header([parent.state]) if parent.state else None
    remote = SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(parent.flags, 16)),
        trace_state=state,
    )
    return set_span_in_context(NonRecordingSpan(remote))


def _context_of(span: Span, state: str | None) -> TraceContext:
    """What work done for ``span`` continues: its ids; the caller's ``tracestate``,
    unchanged (aigw adds no entry of its own)."""
    ids = span.get_span_context()
    return TraceContext(
        format(ids.trace_id, "032x"),
        format(ids.span_id, "016x"),
        format(ids.trace_flags, "02x"),
        state,
    )


class OTelRequestSpan:
    __slots__ = ("context", "method", "span")

    def __init__(self, span: Span, method: str, state: str | None) -> None:
        self.span = span
        self.method = method
        self.context: TraceContext | None = _context_of(span, state)

    def finish(
        self, backend: str | None, name: str | None, outcome: Outcome, error_code: int | None
    ) -> None:
        span = self.span
        if span.is_recording():
            span.set_attribute("aigw.outcome", outcome)
            if backend is not None:
                span.set_attribute("mcp.backend", backend)
            attribute = _NAME_ATTRIBUTES.get(self.method)
            if attribute is not None and name is not None:
                span.set_attribute(attribute, reported_text(name))
            if error_code is not None:
                span.set_attribute("rpc.jsonrpc.error_code", error_code)
            if outcome not in _FINE:
                span.set_status(StatusCode.ERROR, outcome)
        span.end()


class OTelUpstreamSpan:
    __slots__ = ("context", "span")

    def __init__(self, span: Span, state: str | None) -> None:
        self.span = span
        self.context: TraceContext | None = _context_of(span, state)

    def finish(self, status: int | None, error: str | None) -> None:
        span = self.span
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(StatusCode.ERROR, error)
        span.end()


class OTelTracer:
    """Spans of one ``TracerProvider``, handed to ``processor`` as they end."""

    def __init__(self, config: TracingConfig, processor: SpanProcessor) -> None:
        self.provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            resource=Resource.create({"service.name": config.service_name}),
        )
        self.provider.add_span_processor(processor)
        self._tracer = self.provider.get_tracer("aigw")

    def request(self, parent: TraceContext | None, method: str) -> OTelRequestSpan:
        method = _method(method)
        span = self._tracer.start_span(
            f"mcp {method}",
            context=_parent_context(parent),
            kind=SpanKind.SERVER,
            attributes={"mcp.method.name": method},
        )
        return OTelRequestSpan(span, method, parent.state if parent else None)

    def upstream(self, parent: TraceContext | None, backend: str, method: str) -> OTelUpstreamSpan:
        method = _method(method)
        span = self._tracer.start_span(
            f"aigw.upstream {backend}",
            context=_parent_context(parent),
            kind=SpanKind.CLIENT,
            attributes={"mcp.backend": backend, "mcp.method.name": method},
        )
        return OTelUpstreamSpan(span, parent.state if parent else None)
