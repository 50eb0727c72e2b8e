"""Hostile strings in every position a client writes, through the real gateway.

A client's JSON may carry strings no UTF-8 holds (lone surrogates, ``"\\ud800"``:
valid JSON text, RFC 8259 section 8.2, which ``jsonrpc.loads`` reads and aigw relays),
NUL, CR, LF, U+2028/U+2029, non-characters and very long strings.  Wherever one
goes (method, id, tool name, argument key and value, resource URI, prompt name,
``_meta``, cursor, progress token, log level, an answer to a backend's request, a
2026-07-28 retry's ``inputResponses`` and ``requestState``, and the
``Mcp-Session-Id``, ``Last-Event-ID`` and ``MCP-Protocol-Version`` headers), to a
2025-11-25 backend (``alpha``) or a 2026-07-28 one (``beta``): the answer is never
HTTP 500, it is a JSON-RPC answer with a code (or the backend's answer relayed),
nothing is logged at error level or with a traceback, no log event makes more journal
lines than its format has, every span encodes for OTLP, every audit line (arguments
included) is JSON, and the gateway serves a normal call afterwards.  docs/security.md,
"What a client writes, in the logs, the trail and the spans".
"""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest
from twisted.logger import LogEvent, LogLevel, globalLogPublisher
from twisted.python.filepath import FilePath

from aigw.config import AuditConfig, SessionsConfig, TracingConfig
from aigw.gateway.catalog import LEARN_AGAIN_SECONDS
from aigw.logging import JournalObserver
from aigw.tracing import otel
from tests.unit.fuzz.strategies import FUZZ
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import (
    ACCEPT,
    ENVELOPE,
    MODERN,
    Collect,
    GatewayTestCase,
    HangUp,
    sse_messages,
)

#: Fewer examples than the other fuzz tests: each one is several requests.
FEW = settings(FUZZ, max_examples=40)
#: The strings that broke, or could break, a strict encoding, a line or a header.
HOSTILE_PARTS = (
    "\ud800",
    "\udfff",
    "\udc80x",
    "\x00",
    "\r",
    "\n",
    "\r\n",
    "\u2028",
    "\u2029",
    "\ufffe",
    "\uffff",
    "\U0010ffff",
    "\u00e9",
    "",
)
hostile = st.lists(st.sampled_from(HOSTILE_PARTS), min_size=1, max_size=3).map("".join) | (
    st.sampled_from(["x" * 20_000, "\ud800" * 20_000])
)
#: Bytes a header may carry (Twisted sends no CR or LF in one).
hostile_header = st.sampled_from(
    [b"\x00", b"\xff", b"\xed\xa0\x80", b"a\x00b", b"\xe2\x80\xa8", b"x" * 9_000, b"", b" "]
)

#: The tools the backends list before a test adds one.
BASELINE = frozenset(
    {"alpha__echo", "alpha__progress", "alpha__link", "alpha__ask", "beta__t1", "beta__needs-input"}
)
LEGACY_POSITIONS = (
    "method",
    "id",
    "tool",
    "argument key",
    "argument value",
    "uri",
    "prompt",
    "meta",
    "cursor",
    "progress token",
    "log level",
    "answer id",
    "answer result",
    "completion",
)
MODERN_POSITIONS = (*LEGACY_POSITIONS, "input responses", "request state")


def request_with(position: str, text: str, backend: str) -> dict[str, Any]:
    """A request to ``backend`` (``alpha``: 2025-11-25, ``beta``: 2026-07-28) with
    ``text`` at ``position``."""
    tool = f"{backend}__t1" if backend == "beta" else f"{backend}__echo"
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    params: dict[str, Any] = {"name": tool, "arguments": {"a": "b"}}
    if position == "method":
        message["method"] = text
    elif position == "id":
        message["id"] = text
    elif position == "tool":
        params["name"] = f"{backend}__{text}"
    elif position == "argument key":
        params["arguments"] = {text: "v"}
    elif position == "argument value":
        params["arguments"] = {"k": text, "n": [text, {"deep": text}]}
    elif position == "uri":
        message["method"] = "resources/read"
        params = {"uri": f"aigw:{backend}/file:///{text}"}
    elif position == "prompt":
        message["method"] = "prompts/get"
        params = {"name": f"{backend}__{text}", "arguments": {text: text}}
    elif position == "meta":
        params["_meta"] = {text: text, "x": {"y": text}}
    elif position == "cursor":
        message["method"] = "tools/list"
        params = {"cursor": text}
    elif position == "progress token":
        params["_meta"] = {"progressToken": text}
    elif position == "log level":
        message["method"] = "logging/setLevel"
        params = {"level": text}
    elif position == "answer id":
        # An answer to a request the backend sent the client (sampling, elicitation).
        return {"jsonrpc": "2.0", "id": text, "result": {"action": "accept"}}
    elif position == "answer result":
        return {"jsonrpc": "2.0", "id": "s1", "result": {text: text, "content": text}}
    elif position == "completion":
        message["method"] = "completion/complete"
        params = {
            "ref": {"type": "ref/prompt", "name": f"{backend}__{text}"},
            "argument": {"name": text, "value": text},
        }
    elif position == "input responses":
        params["name"] = "beta__needs-input"
        params["inputResponses"] = {"who": {"action": "accept", "content": {text: text}}}
        params["requestState"] = "state-1"
    elif position == "request state":
        params["name"] = "beta__needs-input"
        params["inputResponses"] = {"who": {"action": "accept"}}
        params["requestState"] = text
    message["params"] = params
    return message


class HostileStringTests(GatewayTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.logged: list[LogEvent] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        self.exporter = InMemorySpanExporter()
        self.patch(otel, "OTLPSpanExporter", lambda **_: self.exporter)
        self.patch(otel, "BatchSpanProcessor", SimpleSpanProcessor)
        self.audit = FilePath(self.mktemp())
        self.beta = FakeUpstream(tools=["t1", "needs-input"], modern=True)
        self.network.run(
            self.start_gateway(
                beta=self.beta,
                tracing=TracingConfig("http://127.0.0.1:4318/v1/traces"),
                audit=AuditConfig(file=self.audit.path, include_arguments=True),
                sessions=SessionsConfig(input_timeout=5.0),
            )
        )
        self.alpha.tools.append("ask")
        asks = {"elicitation": {}, "sampling": {}}
        self.session = self.network.run(self.initialize(capabilities=asks))

    def assertReported(self) -> None:
        """Every span encodes for OTLP; every audit line is one JSON object."""
        encode_spans(self.exporter.get_finished_spans()).SerializeToString()
        self.exporter.clear()
        for line in self.audit.getContent().splitlines():
            self.assertIsInstance(json.loads(line), dict)

    def assertNoErrorLogged(self) -> None:
        bad = [
            event
            for event in self.logged
            if "log_failure" in event or event.get("log_level", LogLevel.info) >= LogLevel.error
        ]
        self.flushLoggedErrors()
        for event in self.logged:
            # What a client wrote is no line of its own in the journal (aigw/logging.py).
            stream = io.StringIO()
            JournalObserver(stream)(event)
            own = len(str(event.get("log_format") or "").splitlines()) or 1
            self.assertLessEqual(stream.getvalue().count("\n"), own, stream.getvalue()[:500])
        self.logged.clear()
        self.assertEqual(bad, [])

    def assertJsonRpcAnswer(self, response: Any, content: bytes, sent: dict[str, Any]) -> None:
        """Not 500; JSON (or SSE) carrying a JSON-RPC answer to ``sent`` with an error
        code or a result, or no body for an answer the client sent."""
        self.assertNotEqual(response.code, 500, content[:500])
        kind = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
        if "method" not in sent:
            self.assertIn(response.code, (202, 400, 404), content[:500])
            return
        if kind.startswith(b"text/event-stream"):
            lines = [line[6:] for line in content.splitlines() if line.startswith(b"data: ")]
            messages = [json.loads(line) for line in lines if line]
            answers = [m for m in messages if "method" not in m]
            self.assertEqual(len(answers), 1, content[:500])
            answer = answers[0]
        else:
            self.assertTrue(kind.startswith(b"application/json"), (response.code, content[:500]))
            answer = json.loads(content)
            if 400 <= response.code < 500 and "jsonrpc" not in answer:
                # Refused before MCP (a NUL in a header, the headers too long): aigw's own
                # error shape.
                self.assertEqual(set(answer), {"error", "error_description"}, answer)
                return
        self.assertEqual(answer.get("jsonrpc"), "2.0", answer)
        if "error" in answer:
            self.assertIsInstance(answer["error"].get("code"), int, answer)
            self.assertIsInstance(answer["error"].get("message"), str, answer)
        else:
            self.assertIn("result", answer)

    async def send(self, message: dict[str, Any], headers: dict[bytes, bytes]) -> tuple[Any, bytes]:
        sent = {b"Content-Type": [b"application/json"], b"Accept": [ACCEPT.encode()]}
        sent.update({name: [value] for name, value in headers.items()})
        data = json.dumps(message).encode("ascii")  # lone surrogates as \\u escapes
        response = await self.http.post(self.url, data=data, headers=sent)
        return response, await response.content()

    async def get(self, headers: dict[bytes, bytes]) -> None:
        """GET the stream; when it opens, read its first bytes and hang up."""
        sent = {name: [value] for name, value in headers.items()}
        response = await self.http.get(self.url, headers=sent, unbuffered=True)
        self.assertNotEqual(response.code, 500)
        if response.code == 200:
            reader = HangUp()
            response.deliverBody(reader)
            await reader.got
        else:
            await response.content()

    def legacy_headers(self) -> dict[bytes, bytes]:
        return {b"Mcp-Session-Id": self.session.encode(), b"MCP-Protocol-Version": b"2025-11-25"}

    def assertServing(self) -> None:
        for backend in ("alpha", "beta"):
            tool = "beta__t1" if backend == "beta" else "alpha__echo"
            answer = self.network.run(self.call(self.session, "tools/call", {"name": tool}))
            self.assertIn("result", answer)
            modern = self.modern_call({"name": tool, "arguments": {}})
            self.assertIn("result", modern)

    def modern_call(self, params: dict[str, Any]) -> Any:
        message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
        message["params"] = {**params, "_meta": ENVELOPE}
        headers = {
            b"MCP-Protocol-Version": MODERN.encode(),
            b"Mcp-Method": b"tools/call",
            b"Mcp-Name": params["name"].encode(),
        }
        response, content = self.network.run(self.send(message, headers))
        self.assertEqual(response.code, 200, content)
        return json.loads(content)

    @FEW
    @given(st.sampled_from(LEGACY_POSITIONS), hostile, st.sampled_from(["alpha", "beta"]))
    def test_a_legacy_client_gets_an_answer(self, position: str, text: str, backend: str) -> None:
        """A 2025-11-25 client, in its session, to either backend."""
        message = request_with(position, text, backend)
        self.assertJsonRpcAnswer(
            *self.network.run(self.send(message, self.legacy_headers())), message
        )
        self.assertNoErrorLogged()
        self.assertServing()
        self.assertNoErrorLogged()
        self.assertReported()

    @FEW
    @given(st.sampled_from(MODERN_POSITIONS), hostile, st.sampled_from(["alpha", "beta"]))
    def test_a_modern_client_gets_an_answer(self, position: str, text: str, backend: str) -> None:
        """A 2026-07-28 client (no session, the envelope in ``_meta``), to either backend."""
        message = request_with(position, text, backend)
        params = message.setdefault("params", {})
        if isinstance(params, dict):
            meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
            params["_meta"] = {**meta, **ENVELOPE}
        headers = {b"MCP-Protocol-Version": MODERN.encode()}
        if isinstance(message.get("method"), str):
            method = message["method"]
            headers[b"Mcp-Method"] = method.encode("utf-8", "backslashreplace")
            if "name" in params and isinstance(params["name"], str):
                headers[b"Mcp-Name"] = params["name"].encode("utf-8", "backslashreplace")
            if "uri" in params:
                headers[b"Mcp-Name"] = params["uri"].encode("utf-8", "backslashreplace")
        headers = {k: v.replace(b"\r", b"").replace(b"\n", b"") for k, v in headers.items()}
        self.assertJsonRpcAnswer(*self.network.run(self.send(message, headers)), message)
        self.assertNoErrorLogged()
        self.assertServing()
        self.assertNoErrorLogged()
        self.assertReported()

    async def answer_question(self, tool: str, answer: Any) -> Any:
        """Call ``tool``, which asks the client (sampling, elicitation) on the call's
        stream; answer the question with ``answer`` (a result, or an error's message);
        the call's own answer."""
        response = await self.stream_call(self.session, 7, {"name": tool, "arguments": {}})
        chunks: list[bytes] = []
        response.deliverBody(Collect(chunks))
        await self.until(lambda: sse_messages(b"".join(chunks)))
        asked = sse_messages(b"".join(chunks))[0]
        self.assertIn(asked["method"], ("sampling/createMessage", "elicitation/create"))
        reply = {"jsonrpc": "2.0", "id": asked["id"], **answer}
        sent, body = await self.send(reply, self.legacy_headers())
        self.assertNotEqual(sent.code, 500, body)
        await self.until(lambda: len(sse_messages(b"".join(chunks))) == 2)
        return sse_messages(b"".join(chunks))[1]

    @FEW
    @given(
        st.sampled_from(["alpha__ask", "beta__needs-input"]),
        st.sampled_from(["result key", "result value", "error message", "progress"]),
        hostile,
    )
    def test_answers_to_a_backends_question(self, tool: str, position: str, text: str) -> None:
        """The client's answer to a backend's sampling or elicitation request (2025-11-25,
        and a 2026-07-28 backend's input request aigw asks for it), and a progress
        token the backend echoes."""
        if position == "progress":
            params = {"name": "alpha__progress", "_meta": {"progressToken": text}}
            answer = self.network.run(self.call(self.session, "tools/call", params))
            messages = sse_messages(answer) if isinstance(answer, bytes) else [answer]
            self.assertIn("result", messages[-1])
        else:
            content = {"action": "accept", "content": {text: text}, "model": text}
            reply = {
                "result key": {"result": {**content, text: 1}},
                "result value": {"result": content},
                "error message": {"error": {"code": -1, "message": text, "data": text}},
            }[position]
            final = self.network.run(self.answer_question(tool, reply))
            self.assertEqual(final["id"], 7, final)
            self.assertTrue("result" in final or isinstance(final["error"]["code"], int))
        self.assertNoErrorLogged()
        self.assertServing()
        self.assertNoErrorLogged()
        self.assertReported()

    @FEW
    @given(hostile, st.sampled_from(["alpha", "beta"]))
    def test_a_backends_hostile_tool(self, text: str, backend: str) -> None:
        """A backend (2025-11-25 or 2026-07-28) lists a tool whose name, title and
        description hold ``text``; the client lists it and calls it: an answer each
        time, the spans, the trail and the metrics' scrape whole."""
        upstream = self.alpha if backend == "alpha" else self.beta
        name = "t" + text
        upstream.tools.append(name)
        upstream.details[name] = {"title": text, "description": text}
        try:
            self.reactor.advance(LEARN_AGAIN_SECONDS + 1)
            names = self.network.run(self.tool_names(self.session))
            for exposed in names:
                if exposed.startswith(f"{backend}__") and exposed not in BASELINE:
                    answer = self.network.run(self.call_tool(self.session, exposed))
                    self.assertTrue("result" in answer or isinstance(answer["error"]["code"], int))
            generate_latest(self.service.metrics.registry).decode("utf-8")
        finally:
            upstream.tools.remove(name)
            upstream.details.pop(name)
        self.assertNoErrorLogged()
        self.assertServing()
        self.assertNoErrorLogged()
        self.assertReported()

    @FEW
    @given(
        st.sampled_from(["Mcp-Session-Id", "MCP-Protocol-Version", "Last-Event-ID"]),
        hostile_header,
        st.booleans(),
    )
    def test_hostile_headers_get_an_answer(self, name: str, value: bytes, get: bool) -> None:
        """The session, version and resumption headers, on a POST or the GET stream."""
        headers = self.legacy_headers()
        headers[name.encode()] = value
        if get:
            headers[b"Accept"] = b"text/event-stream"
            self.network.run(self.get(headers))
        else:
            message = request_with("argument value", "x", "alpha")
            self.assertJsonRpcAnswer(*self.network.run(self.send(message, headers)), message)
        self.network.run(self.network.settle())
        self.assertNoErrorLogged()
        self.assertServing()
        self.assertNoErrorLogged()
        self.assertReported()
