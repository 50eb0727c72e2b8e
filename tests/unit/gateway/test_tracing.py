"""Tracing through the gateway: the client's W3C trace context reaches the backends
(W3C Trace Context §3.2), and with ``tracing`` on, one span per MCP request with a
child span per upstream call, the backend continuing the child."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aigw.config import TracingConfig
from aigw.tracing import otel
from tests.unit.gateway.helpers import GatewayTestCase, initialize_message, modern, routing
from tests.unit.memory import run

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CLIENT_SPAN}-01"
CALL = {"name": "alpha__echo", "arguments": {"x": 1}}


class PropagationTests(GatewayTestCase):
    """Tracing off (the default): the client's context goes upstream unchanged."""

    async def call_with(self, headers: dict[str, str]) -> dict[str, list[str]]:
        session = await self.initialize()
        await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": CALL},
            session,
            {"MCP-Protocol-Version": "2025-11-25", **headers},
        )
        received: dict[str, list[str]] = self.alpha.received[-1][0]
        return received

    @run
    async def test_traceparent_and_tracestate_reach_the_backend_unchanged(self) -> None:
        await self.start_gateway()
        headers = await self.call_with({"traceparent": TRACEPARENT, "tracestate": "rojo=1"})
        self.assertEqual(headers["traceparent"], [TRACEPARENT])
        self.assertEqual(headers["tracestate"], ["rojo=1"])

    @run
    async def test_no_trace_context_is_made_up(self) -> None:
        await self.start_gateway()
        headers = await self.call_with({})
        self.assertNotIn("traceparent", headers)
        self.assertNotIn("tracestate", headers)

    @run
    async def test_an_invalid_traceparent_is_not_forwarded(self) -> None:
        """§3.2.2: an invalid traceparent (here all-zero parent-id) is ignored, and so
        then is tracestate."""
        await self.start_gateway()
        headers = await self.call_with(
            {"traceparent": f"00-{TRACE}-{'0' * 16}-01", "tracestate": "rojo=1"}
        )
        self.assertNotIn("traceparent", headers)
        self.assertNotIn("tracestate", headers)

    @run
    async def test_the_backend_gets_the_context_in_meta_too(self) -> None:
        """SEP-414: _meta carries it as well (all a stdio backend sees)."""
        await self.start_gateway()
        await self.call_with({"traceparent": TRACEPARENT})
        self.assertEqual(self.alpha.received[-1][1]["params"]["_meta"]["traceparent"], TRACEPARENT)

    @run
    async def test_a_context_in_meta_is_passed_on_in_the_headers_too(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        meta = {"traceparent": TRACEPARENT, "progressToken": 5}
        await self.call(session, "tools/call", {**CALL, "_meta": meta})
        headers, body = self.alpha.received[-1]
        self.assertEqual(headers["traceparent"], [TRACEPARENT])
        self.assertEqual(body["params"]["_meta"], meta)

    @run
    async def test_a_stateless_request_carries_the_trace_too(self) -> None:
        await self.start_gateway()
        response, _ = await self.post(
            modern("tools/call", CALL),
            headers={**routing("tools/call", "alpha__echo"), "traceparent": TRACEPARENT},
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(self.alpha.received[-1][0]["traceparent"], [TRACEPARENT])


class SpanTests(GatewayTestCase):
    """``tracing`` on: spans recorded with the OpenTelemetry SDK (exported in memory)."""

    def setUp(self) -> None:
        super().setUp()
        self.exporter = InMemorySpanExporter()
        # The OTLP exporter and its batching thread, replaced by in-memory, synchronous ones.
        self.patch(otel, "OTLPSpanExporter", lambda **_: self.exporter)
        self.patch(otel, "BatchSpanProcessor", SimpleSpanProcessor)

    async def start(self, sample_ratio: float = 1.0) -> str:
        tracing = TracingConfig("http://127.0.0.1:4318/v1/traces", sample_ratio=sample_ratio)
        await self.start_gateway(tracing=tracing)
        session = await self.initialize()
        self.exporter.clear()  # initialize's own span
        return session

    async def tool_call(self, session: str, headers: dict[str, str]) -> Any:
        _, body = await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": CALL},
            session,
            {"MCP-Protocol-Version": "2025-11-25", **headers},
        )
        return body

    def spans(self) -> tuple[ReadableSpan, ReadableSpan]:
        spans = {s.name: s for s in self.exporter.get_finished_spans()}
        self.assertEqual(sorted(spans), ["aigw.upstream alpha", "mcp tools/call"])
        return spans["mcp tools/call"], spans["aigw.upstream alpha"]

    @run
    async def test_a_request_span_and_a_child_per_upstream_call_continue_the_client(
        self,
    ) -> None:
        session = await self.start()
        await self.tool_call(session, {"traceparent": TRACEPARENT, "tracestate": "rojo=1"})
        request, upstream = self.spans()
        assert request.parent is not None
        assert upstream.parent is not None
        self.assertEqual(request.context.trace_id, int(TRACE, 16))
        self.assertEqual(request.parent.span_id, int(CLIENT_SPAN, 16))
        self.assertTrue(request.parent.is_remote)
        self.assertEqual(upstream.context.trace_id, int(TRACE, 16))
        self.assertEqual(upstream.parent.span_id, request.context.span_id)
        self.assertEqual(request.kind, SpanKind.SERVER)
        self.assertEqual(upstream.kind, SpanKind.CLIENT)
        # The backend continues the upstream call's span; tracestate passes unchanged.
        headers = self.alpha.received[-1][0]
        self.assertEqual(headers["traceparent"], [f"00-{TRACE}-{upstream.context.span_id:016x}-01"])
        self.assertEqual(headers["tracestate"], ["rojo=1"])

    @run
    async def test_a_context_in_meta_wins_over_the_headers(self) -> None:
        """SEP-414: the request's own _meta names its parent; the backend's _meta names
        aigw's upstream span, like its traceparent header."""
        session = await self.start()
        other = "11111111111111111111111111111111"
        await self.tool_call_meta(session, {"traceparent": f"00-{other}-{CLIENT_SPAN}-01"})
        request, upstream = self.spans()
        self.assertEqual(request.context.trace_id, int(TRACE, 16))
        sent = f"00-{TRACE}-{upstream.context.span_id:016x}-01"
        headers, body = self.alpha.received[-1]
        self.assertEqual(headers["traceparent"], [sent])
        self.assertEqual(body["params"]["_meta"]["traceparent"], sent)

    async def tool_call_meta(self, session: str, headers: dict[str, str]) -> None:
        params = {**CALL, "_meta": {"traceparent": TRACEPARENT}}
        await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params},
            session,
            {"MCP-Protocol-Version": "2025-11-25", **headers},
        )

    @run
    async def test_each_request_of_a_batch_is_the_parent_of_its_own_upstream_call(
        self,
    ) -> None:
        """The batch's requests share one session view; each gets its own span."""
        await self.start_gateway(tracing=TracingConfig("http://127.0.0.1:4318/v1/traces"))
        response, _ = await self.post(initialize_message("2025-03-26", 0))
        session_id = response.headers.getRawHeaders(b"mcp-session-id")[0].decode()
        self.exporter.clear()
        batch = [
            {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": CALL} for rid in (1, 2)
        ]
        _, body = await self.post(
            batch,
            session_id,
            {"MCP-Protocol-Version": "2025-03-26", "traceparent": TRACEPARENT},
        )
        self.assertEqual(len(body), 2, body)
        spans = self.exporter.get_finished_spans()
        requests = [s for s in spans if s.name == "mcp tools/call"]
        calls = [s for s in spans if s.name == "aigw.upstream alpha"]
        self.assertEqual((len(requests), len(calls)), (2, 2))
        self.assertEqual({s.context.trace_id for s in spans}, {int(TRACE, 16)})
        self.assertEqual(
            sorted(c.parent.span_id for c in calls if c.parent),
            sorted(r.context.span_id for r in requests),
        )
        sent = sorted(h["traceparent"][0] for h, _ in self.alpha.received[-2:])
        self.assertEqual(sent, sorted(f"00-{TRACE}-{c.context.span_id:016x}-01" for c in calls))

    @run
    async def test_the_spans_say_what_happened(self) -> None:
        session = await self.start()
        await self.tool_call(session, {})
        request, upstream = self.spans()
        self.assertEqual(
            dict(request.attributes or {}),
            {
                "mcp.method.name": "tools/call",
                "aigw.outcome": "ok",
                "mcp.backend": "alpha",
                "gen_ai.tool.name": "echo",
            },
        )
        self.assertEqual(
            dict(upstream.attributes or {}),
            {
                "mcp.backend": "alpha",
                "mcp.method.name": "tools/call",
                "http.response.status_code": 200,
            },
        )

    @run
    async def test_without_a_client_trace_aigw_starts_one(self) -> None:
        session = await self.start()
        await self.tool_call(session, {"traceparent": "not-a-traceparent"})
        request, upstream = self.spans()
        self.assertIsNone(request.parent)
        assert upstream.parent is not None
        self.assertEqual(upstream.parent.span_id, request.context.span_id)
        sent = self.alpha.received[-1][0]["traceparent"][0]
        self.assertEqual(sent.split("-")[1], f"{request.context.trace_id:032x}")

    @run
    async def test_an_error_answer_is_an_error_span(self) -> None:
        session = await self.start()
        _, body = await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "nope/nothing"},
            session,
            {"MCP-Protocol-Version": "2025-11-25"},
        )
        self.assertEqual(body["error"]["code"], -32601)
        (span,) = self.exporter.get_finished_spans()
        # A method aigw does not know is one span name, whatever the client sends.
        self.assertEqual(span.name, "mcp _OTHER")
        self.assertEqual((span.attributes or {})["mcp.method.name"], "_OTHER")
        self.assertEqual(span.status.status_code.name, "ERROR")
        self.assertEqual((span.attributes or {})["rpc.jsonrpc.error_code"], -32601)

    @run
    async def test_what_a_client_wrote_never_fails_the_export(self) -> None:
        """Lone surrogates (valid JSON text) in a method or a tool's name: OTLP's protobuf
        encoding refused them, and a span's name failed the whole batch's export."""
        session = await self.start()
        headers = {"MCP-Protocol-Version": "2025-11-25"}
        await self.post(None, session, headers, raw=b'{"jsonrpc":"2.0","id":1,"method":"x\\ud800"}')
        await self.post(
            None,
            session,
            headers,
            raw=b'{"jsonrpc":"2.0","id":2,"method":"tools/call",'
            b'"params":{"name":"alpha__ech\\udfff","arguments":{}}}',
        )
        spans = self.exporter.get_finished_spans()
        self.assertEqual(spans[0].name, "mcp _OTHER")
        encode_spans(spans).SerializeToString()  # raised UnicodeEncodeError before
        named = [
            (span.attributes or {}).get("gen_ai.tool.name")
            for span in spans
            if span.name == "mcp tools/call"
        ]
        self.assertEqual(named, ["ech\\udfff"])

    @run
    async def test_the_client_not_sampling_is_followed(self) -> None:
        """§3.2.2.5: the caller's sampled flag decides; nothing is recorded, and the
        backend hears the trace is not sampled."""
        session = await self.start()
        await self.tool_call(session, {"traceparent": TRACEPARENT[:-2] + "00"})
        self.assertEqual(self.exporter.get_finished_spans(), ())
        sent = self.alpha.received[-1][0]["traceparent"][0]
        self.assertTrue(sent.startswith(f"00-{TRACE}-") and sent.endswith("-00"))

    @run
    async def test_a_stateless_request_is_traced(self) -> None:
        await self.start()
        self.exporter.clear()
        await self.post(
            modern("tools/call", CALL),
            headers={**routing("tools/call", "alpha__echo"), "traceparent": TRACEPARENT},
        )
        request, upstream = self.spans()
        self.assertEqual(request.context.trace_id, int(TRACE, 16))
        self.assertEqual(upstream.parent and upstream.parent.span_id, request.context.span_id)
