"""Tracing end to end (issue 12, items 5 and 8): a client's ``traceparent`` reaches a real
upstream through the real aigw, and with ``tracing.otlp_endpoint`` set, aigw's spans
arrive at an OTLP/HTTP receiver as protobuf, the upstream continuing aigw's child span;
aigw stopped at once after the call still exports what it had queued.

Client: plain HTTP (httpx), so the test controls the trace headers; upstream: the
``mcp`` SDK server's ``whoami-headers`` tool; receiver: ``http.server`` on
127.0.0.1, decoding with ``opentelemetry-proto``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .aigw import INITIALIZE, Gateway, start_gateway
from .harness.upstreams import Upstream

pytestmark = pytest.mark.timeout(120)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CLIENT_SPAN}-01"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: every export request to /v1/traces, decoded."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.exports: list[ExportTraceServiceRequest] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def spans(self) -> dict[str, Any]:
        """Every span received, by name."""
        return {
            span.name: span
            for export in list(self.exports)
            for resource in export.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        }


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        self.server.exports.append(export)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def call_whoami(gateway: Gateway, trace_headers: dict[str, str]) -> dict[str, str]:
    """A session, then ``whoami-headers`` with ``trace_headers``: the upstream's headers."""
    with httpx2.Client(timeout=20) as http:
        opened = http.post(
            gateway.url,
            headers=HEADERS,
            json=INITIALIZE,
        )
        assert opened.status_code == 200, opened.text
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        version = {"MCP-Protocol-Version": "2025-11-25"}
        http.post(
            gateway.url,
            headers={**HEADERS, **session, **version},
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )
        answered = http.post(
            gateway.url,
            headers={**HEADERS, **session, **version, **trace_headers},
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "py__whoami-headers", "arguments": {}},
            },
        )
    assert answered.status_code == 200, answered.text
    body = answered.text
    if answered.headers["content-type"].startswith("text/event-stream"):
        body = next(line[6:] for line in body.splitlines() if line.startswith("data: "))
    result = json.loads(body)["result"]
    headers: dict[str, str] = json.loads(result["content"][0]["text"])
    return headers


def test_traceparent_reaches_the_upstream_with_tracing_off(pyserver: Upstream) -> None:
    gateway = start_gateway([("py", pyserver.url)])
    try:
        seen = call_whoami(gateway, {"traceparent": TRACEPARENT, "tracestate": "rojo=1"})
    finally:
        gateway.stop()
    assert seen["traceparent"] == TRACEPARENT
    assert seen["tracestate"] == "rojo=1"


def test_spans_arrive_over_otlp_and_the_upstream_continues_them(
    pyserver: Upstream, receiver: Receiver
) -> None:
    gateway = start_gateway(
        [("py", pyserver.url)],
        extra=f"tracing: {{otlp_endpoint: '{receiver.endpoint}', service_name: aigw-e2e}}\n",
    )
    try:
        # A method holding a lone surrogate (valid JSON text), in the same export batch:
        # OTLP's encoding refused its span's name and the whole batch was lost.
        with httpx2.Client(timeout=20) as http:
            opened = http.post(gateway.url, headers=HEADERS, json=INITIALIZE)
            hostile = http.post(
                gateway.url,
                headers={**HEADERS, "Mcp-Session-Id": opened.headers["mcp-session-id"]},
                content=b'{"jsonrpc":"2.0","id":5,"method":"tools/\\ud800"}',
            )
            assert hostile.json()["error"]["code"] == -32601, hostile.text
        seen = call_whoami(gateway, {"traceparent": TRACEPARENT})
    finally:
        # Stopped at once: what is still queued is exported as the process exits.
        assert gateway.stop() == 0
    deadline = time.monotonic() + 10  # bounded; the export is done by now in practice
    while time.monotonic() < deadline:
        spans = receiver.spans()
        if {"mcp tools/call", "aigw.upstream py"} <= spans.keys():
            break
        time.sleep(0.1)
    request, upstream = spans["mcp tools/call"], spans["aigw.upstream py"]
    assert request.trace_id.hex() == TRACE
    assert request.parent_span_id.hex() == CLIENT_SPAN
    assert upstream.trace_id.hex() == TRACE
    assert upstream.parent_span_id == request.span_id
    # The upstream got aigw's child span as its parent, in the client's trace.
    assert seen["traceparent"] == f"00-{TRACE}-{upstream.span_id.hex()}-01"
    assert "mcp _OTHER" in spans
    assert "Traceback" not in gateway.process.log(), gateway.process.log_tail()
    resource = receiver.exports[0].resource_spans[0].resource
    names = {a.key: a.value.string_value for a in resource.attributes}
    assert names["service.name"] == "aigw-e2e"
