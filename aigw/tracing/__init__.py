"""Tracing: W3C trace context propagation, and OpenTelemetry spans when configured.

``build_tracer`` imports OpenTelemetry only when ``tracing`` is configured:
with tracing off (the default) the process never loads it (docs/performance.md).
"""

from __future__ import annotations

from aigw.config import TracingConfig
from aigw.tracing.api import NoTracer, RequestSpan, Tracer, UpstreamSpan
from aigw.tracing.context import TraceContext

__all__ = ["NoTracer", "RequestSpan", "TraceContext", "Tracer", "UpstreamSpan", "build_tracer"]


def build_tracer(config: TracingConfig | None) -> Tracer:
    """The tracer of ``config.tracing`` (None: tracing off)."""
    if config is None:
        return NoTracer()
    from aigw.tracing.otel import otlp_tracer  # only when configured

    return otlp_tracer(config)
