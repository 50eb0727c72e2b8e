"""Microbenchmarks of aigw's hot-path pieces (timeit, in-process, no network).

    .venv/bin/python bench/micro.py [--repeat 7] [--only NAME,...]

Prints the median time per operation of each case.  A piece of aigw that is
not importable yet (or whose API does not match what a case expects) is
skipped with a message: this is a tool, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROTOCOL = "2025-11-25"
CALL = {
    "jsonrpc": "2.0",
    "id": 1000000001,
    "method": "tools/call",
    "params": {"name": "bench__echo", "arguments": {"message": "hello"}},
}
CALL_BYTES = json.dumps(CALL).encode()
RESULT = {
    "jsonrpc": "2.0",
    "id": 1000000001,
    "result": {"content": [{"type": "text", "text": "hello"}], "isError": False},
}
SSE_EVENT = b"id: 17\nevent: message\ndata: " + json.dumps(RESULT).encode() + b"\n\n"

Case = Callable[[], Callable[[], object]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


# ---------------------------------------------------------------- JSON-RPC


@case("jsonrpc.parse_body (tools/call)")
def _parse_body() -> Callable[[], object]:
    from aigw.protocol.jsonrpc import parse_body

    return lambda: parse_body(CALL_BYTES)


@case("json.loads (baseline)")
def _json_loads() -> Callable[[], object]:
    return lambda: json.loads(CALL_BYTES)


# ---------------------------------------------------------------- sealing

SEALED_PAYLOAD = {"s": {"bench": "58efe62b-5f08-44c0-a47f-cb2ef48d0dda"}}


def make_sealer() -> Any:
    from aigw.sealed.sealer import Sealer

    return Sealer(os.urandom(32))


@case("sealing.Sealer seal")
def _seal() -> Callable[[], object]:
    sealer = make_sealer()
    return lambda: sealer.seal(SEALED_PAYLOAD)


@case("sealing.Sealer open")
def _unseal() -> Callable[[], object]:
    sealer = make_sealer()
    token = sealer.seal(SEALED_PAYLOAD)
    return lambda: sealer.open(token)


# ---------------------------------------------------------------- sessions

ISSUER = "http://127.0.0.1:1"
SUBJECT = "bench"


def make_state() -> Any:
    from aigw.sealed.session_id import BackendSession, SessionState

    backend = BackendSession(
        "bench", "58efe62b-5f08-44c0-a47f-cb2ef48d0dda", PROTOCOL, {"tools": {}}
    )
    return SessionState(ISSUER, SUBJECT, time.time(), PROTOCOL, (backend,))


def make_codec() -> Any:
    from aigw.sealed.session_id import SessionCodec

    return SessionCodec(make_sealer(), time.time, 86400.0)


@case("session.SessionCodec issue (initialize)")
def _session_issue() -> Callable[[], object]:
    codec, state = make_codec(), make_state()
    return lambda: codec.issue(state)


@case("session.SessionCodec open (every request: remembered)")
def _session_open() -> Callable[[], object]:
    codec, state = make_codec(), make_state()
    sid = codec.issue(state)
    return lambda: codec.open(sid, ISSUER, SUBJECT)


@case("session.SessionCodec open (first time: unsealed)")
def _session_unseal() -> Callable[[], object]:
    codec, state = make_codec(), make_state()
    sid = codec.issue(state)
    return lambda: codec._unseal(sid, ISSUER, SUBJECT)


@case("jsonrpc.dumps (a tools/call result)")
def _dumps() -> Callable[[], object]:
    from aigw.protocol import jsonrpc

    result = {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "hi"}]}}
    return lambda: jsonrpc.dumps(result)


# ---------------------------------------------------------------- SSE


@case("sse.SSEParser per event")
def _sse() -> Callable[[], object]:
    from aigw.protocol.sse import SSEParser

    parser = SSEParser()
    if len(parser.feed(SSE_EVENT)) != 1:
        raise TypeError("the parser did not return one event for one complete event")
    return lambda: parser.feed(SSE_EVENT)


# ---------------------------------------------------------------- names


@case("names.expose_name")
def _expose() -> Callable[[], object]:
    from aigw.protocol.names import expose_name

    if expose_name("bench", "echo") != "bench__echo":
        raise TypeError(f"expose_name('bench', 'echo') = {expose_name('bench', 'echo')!r}")
    return lambda: expose_name("bench", "echo")


@case("names.split_name")
def _split() -> Callable[[], object]:
    from aigw.protocol.names import split_name

    split_name("bench__echo")
    return lambda: split_name("bench__echo")


# ---------------------------------------------------------------- web


@case("HostCheck.allows (Host: 127.0.0.1:port)")
def _host_check() -> Callable[[], object]:
    from aigw.web.host import HostCheck

    check = HostCheck("http://127.0.0.1:1975")
    hosts = [b"127.0.0.1:1975"]
    if not check.allows(hosts):
        raise ValueError("127.0.0.1 refused")
    return lambda: check.allows(hosts)


def keep_alive_request(body: bytes) -> Callable[[], object]:
    """One request on a kept-alive connection of aigw's ``BoundedSite``, from its bytes to
    its answer written (a resource that answers ``body``), on the reactor's clock (not
    running): Twisted's HTTP server per request plus aigw's channel (limits, timers)."""
    from twisted.internet import reactor
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport
    from twisted.web.resource import Resource

    from aigw.config import ServerConfig
    from aigw.web.server import BoundedSite

    class Answer(Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> bytes:
            request.setHeader(b"content-type", b"application/json")
            return body

    site = BoundedSite(Answer(), ServerConfig(), reactor, access_log=False)
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = StringTransport()
    channel.makeConnection(transport)
    payload = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}'
    head = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:1975\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n"
        b"Content-Length: %d\r\n\r\n" % len(payload)
    )
    data = head + payload

    def op() -> None:
        channel.dataReceived(data)
        if not transport.value().endswith(body):
            raise ValueError("no answer")
        transport.clear()

    return op


@case("BoundedSite: one keep-alive request, in memory")
def _keep_alive_request() -> Callable[[], object]:
    return keep_alive_request(b'{"jsonrpc":"2.0","id":1,"result":{}}')


# ---------------------------------------------------------------- upstream


def upstream_reply(reads: list[bytes], messages: int) -> Callable[[], object]:
    """One ``Upstream.post`` answered by ``reads`` (the backend's bytes, read by read) on
    a kept-alive connection, then the timer bookkeeping of one reactor iteration
    (``runUntilCurrent``; the reactor is not running): the upstream client per call, its
    body reader's inactivity deadline included.  The connection is played by hand (a
    StringTransport)."""
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred, succeed
    from twisted.internet.testing import StringTransport

    from aigw.config import BackendConfig
    from aigw.upstream.client import Upstream

    upstream = Upstream(BackendConfig(name="bench", url="http://127.0.0.1:1/mcp"), reactor)
    links: list[Any] = []

    class Endpoint:
        def connect(self, factory: Any) -> Any:
            protocol = factory.buildProtocol(None)
            protocol.makeConnection(StringTransport())
            links.append(protocol)
            return succeed(protocol)

    upstream.connections.target.endpoint = Endpoint()
    received: list[Any] = []

    def op() -> None:
        d = ensureDeferred(upstream.post(CALL_BYTES, received.append))
        (link,) = links
        link.transport.clear()
        for data in reads:
            link.dataReceived(data)
        if not d.called or len(received) != messages:
            raise ValueError("no answer")
        received.clear()
        reactor.runUntilCurrent()  # the timers' bookkeeping of the iteration that follows

    return op


def _sse_chunk(message: dict[str, Any]) -> bytes:
    data = b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


@case("upstream: one SSE reply (progress, answer: two reads), kept-alive connection")
def _upstream_sse_reply() -> Callable[[], object]:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    progress = _sse_chunk({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})
    return upstream_reply([head + progress, _sse_chunk(RESULT) + b"0\r\n\r\n"], 2)


@case("upstream: one JSON reply (one read), kept-alive connection")
def _upstream_json_reply() -> Callable[[], object]:
    body = json.dumps(RESULT).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return upstream_reply([head % len(body) + body], 1)


# ---------------------------------------------------------------- async layering


def nested_call(levels: int) -> Callable[[], object]:
    """One request as aigw's hot path drives it: ``ensureDeferred`` over ``levels``
    nested coroutines, suspended twice on Deferreds fired later (the upstream's head,
    then its body): what each coroutine layer between the web and the upstream costs."""
    from twisted.internet.defer import Deferred, ensureDeferred

    async def leaf(head: Deferred[int], body: Deferred[int]) -> int:
        return await head + await body

    async def layer(depth: int, head: Deferred[int], body: Deferred[int]) -> int:
        if depth <= 1:
            return await leaf(head, body)
        return await layer(depth - 1, head, body)

    def op() -> object:
        head: Deferred[int] = Deferred()
        body: Deferred[int] = Deferred()
        answered = ensureDeferred(layer(levels, head, body))
        head.callback(1)
        body.callback(2)
        return answered

    return op


@case("async: 1 coroutine, 2 suspensions")
def _nested_1() -> Callable[[], object]:
    return nested_call(1)


@case("async: 12 nested coroutines, 2 suspensions")
def _nested_12() -> Callable[[], object]:
    return nested_call(12)


# ---------------------------------------------------------------- metrics


def make_metrics() -> Any:
    from aigw.metrics import GatewayMetrics

    return GatewayMetrics(["bench"], lambda backend, name: True)


@case("metrics.GatewayMetrics request_finished (tools/call)")
def _metrics_request() -> Callable[[], object]:
    from aigw.events import RequestFinished

    metrics = make_metrics()
    event = RequestFinished("tools/call", None, "bench", "echo", "ok", None, 0.0012, 0.0009)
    return lambda: metrics.request_finished(event)


@case("metrics.GatewayMetrics access_decided")
def _metrics_decision() -> Callable[[], object]:
    from aigw.events import AccessDecided
    from aigw.principal import ANONYMOUS

    metrics = make_metrics()
    event = AccessDecided(ANONYMOUS, "bench", "echo", True, "access.default")
    return lambda: metrics.access_decided(event)


@case("metrics.GatewayMetrics http_observer (/mcp 200)")
def _metrics_http() -> Callable[[], object]:
    observe = make_metrics().http_observer("/mcp")
    return lambda: observe(b"/mcp", 200)


@case("prometheus_client labels().inc() (uncached, baseline)")
def _labels_uncached() -> Callable[[], object]:
    from prometheus_client import CollectorRegistry, Counter

    counter = Counter("c", "c", ("method", "backend", "tool", "outcome"), registry=None)
    CollectorRegistry().register(counter)
    return lambda: counter.labels("tools/call", "bench", "echo", "ok").inc()


@case("metrics scrape (generate_latest, a fresh gateway)")
def _metrics_scrape() -> Callable[[], object]:
    from prometheus_client import generate_latest

    metrics = make_metrics()
    _metrics_request()()
    return lambda: generate_latest(metrics.registry)


# ---------------------------------------------------------------- tracing

#: The request headers of a typical tools/call, as Twisted holds them.
TRACE_HEADERS = {
    b"content-type": [b"application/json"],
    b"accept": [b"application/json, text/event-stream"],
    b"mcp-session-id": [b"x" * 120],
    b"mcp-protocol-version": [PROTOCOL.encode()],
}
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def traced_request(tracer: Any, extra: dict[bytes, list[bytes]]) -> Callable[[], object]:
    """What tracing adds to one routed request: the two header lookups, the request
    span, the upstream call's span and headers, both finished."""
    from twisted.web.http_headers import Headers

    from aigw.tracing.context import TRACEPARENT as PARENT
    from aigw.tracing.context import TRACESTATE, from_headers

    headers = Headers({**TRACE_HEADERS, **extra})

    def op() -> None:
        trace = from_headers(headers.getRawHeaders(PARENT), headers.getRawHeaders(TRACESTATE))
        span = tracer.request(trace, "tools/call")
        call = tracer.upstream(span.context, "bench", "tools/call")
        if call.context is not None:
            call.context.add_headers({})
        call.finish(200, None)
        span.finish("bench", "echo", "ok", None)

    return op


@case("tracing off, no traceparent (added per request)")
def _tracing_off() -> Callable[[], object]:
    from aigw.tracing import NoTracer

    return traced_request(NoTracer(), {})


@case("tracing off, client traceparent passed on")
def _tracing_off_propagating() -> Callable[[], object]:
    from aigw.tracing import NoTracer

    return traced_request(NoTracer(), {b"traceparent": [TRACEPARENT]})


@case("tracing on, 2 spans sampled (export not counted)")
def _tracing_on() -> Callable[[], object]:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    from aigw.config import TracingConfig
    from aigw.tracing.otel import OTelTracer

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer = OTelTracer(
        TracingConfig("http://127.0.0.1:4318/v1/traces"), SimpleSpanProcessor(Drop())
    )
    return traced_request(tracer, {b"traceparent": [TRACEPARENT]})


# ---------------------------------------------------------------- driver


def measure(op: Callable[[], object], repeat: int) -> float:
    """Median seconds per call over ``repeat`` runs of about 0.2 s each."""
    timer = timeit.Timer(op)
    number, elapsed = timer.autorange()
    number = max(1, int(number * 0.2 / max(elapsed, 1e-9)))
    runs = timer.repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number


def human(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:8.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.2f} µs"
    return f"{seconds * 1e3:8.2f} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--only", default="", help="comma-separated substrings of case names")
    args = p.parse_args(argv)
    wanted = [w for w in args.only.split(",") if w]
    width = max(len(n) for n in CASES)
    print(f"{'op':{width}}  {'median/op':>11}  {'ops/s':>10}")
    for name, make in CASES.items():
        if wanted and not any(w in name for w in wanted):
            continue
        try:
            op = make()
            op()
        except (ImportError, AttributeError, TypeError, ValueError, KeyError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"{name:{width}}  skipped: {type(e).__name__}: {msg[:100]}")
            continue
        per = measure(op, args.repeat)
        print(f"{name:{width}}  {human(per):>11}  {1 / per:10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
