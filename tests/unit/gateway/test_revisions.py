"""aigw as a client: which revision each backend speaks, and 2026-07-28 toward those
that speak only it (2026-07-28 basic/versioning "Backward Compatibility",
basic/transports/streamable-http "Request Metadata")."""

from __future__ import annotations

from typing import Any

import treq
from twisted.internet.defer import ensureDeferred

from aigw.protocol.revision import LEGACY, MODERN, choose, encode_header_value
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import GatewayTestCase, modern, routing, sse_messages
from tests.unit.memory import run


class MixedTestCase(GatewayTestCase):
    """alpha speaks 2025-11-25 with sessions, beta speaks only 2026-07-28."""

    async def start_mixed(self) -> None:
        beta = FakeUpstream(tools=["t1", "needs-input", "bad-input"], modern=True)
        await self.start_gateway(beta=beta)

    def methods(self, upstream: FakeUpstream) -> list[str]:
        return [body.get("method") for _, body in upstream.received]


class ProbeTests(MixedTestCase):
    def test_choice(self) -> None:
        self.assertEqual(choose({"supportedVersions": ["2026-07-28"]}), MODERN)
        self.assertEqual(choose({"supportedVersions": ["2026-07-28", "2025-11-25"]}), LEGACY)
        self.assertEqual(choose({"supportedVersions": ["2025-11-25"]}), LEGACY)
        self.assertEqual(choose(None), LEGACY)

    def test_header_encoding(self) -> None:
        self.assertEqual(encode_header_value("t1"), "t1")
        self.assertEqual(encode_header_value(" x"), "=?base64?IHg=?=")
        self.assertTrue(encode_header_value("caf\u00e9").startswith("=?base64?"))

    @run
    async def test_each_backend_is_spoken_to_in_its_revision(self) -> None:
        await self.start_mixed()
        session = await self.initialize()
        self.assertEqual(self.service.gateway.backends.revisions, {"alpha": LEGACY, "beta": MODERN})
        self.assertEqual(self.methods(self.alpha)[:2], ["server/discover", "initialize"])
        self.assertEqual(self.methods(self.beta), ["server/discover", "initialize"])
        body = await self.call(session, "tools/list")
        names = [t["name"] for t in body["result"]["tools"]]
        self.assertIn("beta__t1", names)
        self.assertNotIn("resultType", body["result"])
        body = await self.call(session, "tools/call", {"name": "beta__t1", "arguments": {"a": 1}})
        self.assertEqual(body["result"]["content"][0]["text"], '{"a": 1}')
        self.assertNotIn("resultType", body["result"])
        headers, forwarded = self.beta.received[-1]
        self.assertEqual(headers["mcp-name"], ["t1"])
        self.assertEqual(headers["mcp-method"], ["tools/call"])
        self.assertNotIn("mcp-session-id", headers)
        self.assertEqual(forwarded["params"]["name"], "t1")

    @run
    async def test_a_stateless_client_over_a_stateless_backend(self) -> None:
        await self.start_mixed()
        response, body = await self.post(
            modern("tools/call", {"name": "beta__t1", "arguments": {}}),
            headers=routing("tools/call", "beta__t1"),
        )
        self.assertEqual(response.code, 200, body)
        self.assertEqual(body["result"]["resultType"], "complete")

    @run
    async def test_input_required_a_session_client_cannot_answer_is_refused_precisely(
        self,
    ) -> None:
        """2026-07-28 basic/patterns/mrtr toward a session-based client that declared no
        elicitation: aigw cannot ask it (test_asking.py), and says so."""
        await self.start_mixed()
        session = await self.initialize()
        body = await self.call(session, "tools/call", {"name": "beta__needs-input"})
        self.assertEqual(body["error"]["data"]["reason"], "missing_capability")

    @run
    async def test_input_required_reaches_a_2026_client_and_its_retry_the_backend(self) -> None:
        """basic/patterns/mrtr: the result as the backend sent it (requestState opaque),
        the client's capabilities passed on so the backend may ask, and the retry with
        inputResponses and requestState routed to the same backend."""
        await self.start_mixed()
        capable = {"_meta": {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}}
        call = {"name": "beta__needs-input", "arguments": {}, **capable}
        _, body = await self.post(
            modern("tools/call", call), headers=routing("tools/call", "beta__needs-input")
        )
        result = body["result"]
        self.assertEqual(result["resultType"], "input_required")
        self.assertEqual(result["requestState"], "state-1")
        self.assertEqual(result["inputRequests"]["who"]["method"], "elicitation/create")
        sent = self.beta.received[-1][1]["params"]["_meta"]
        self.assertEqual(sent["io.modelcontextprotocol/clientCapabilities"], {"elicitation": {}})
        retry = {
            **call,
            "inputResponses": {"who": {"action": "accept", "content": {"name": "Ada"}}},
            "requestState": "state-1",
        }
        _, body = await self.post(
            modern("tools/call", retry, rid=2),
            headers=routing("tools/call", "beta__needs-input"),
        )
        self.assertEqual(body["result"]["resultType"], "complete")
        self.assertIn("Ada", body["result"]["content"][0]["text"])

    @run
    async def test_malformed_input_required_is_a_bad_reply(self) -> None:
        """Only elicitation, sampling and roots may be asked for ("Server Requirements")."""
        await self.start_mixed()
        _, body = await self.post(
            modern("tools/call", {"name": "beta__bad-input", "arguments": {}}),
            headers=routing("tools/call", "beta__bad-input"),
        )
        self.assertEqual(body["error"]["data"]["reason"], "bad_reply")

    @run
    async def test_revision_is_forgotten_after_a_failure_and_probed_again(self) -> None:
        await self.start_mixed()
        session = await self.initialize()
        self.alpha.fail_with = 500
        body = await self.call(session, "tools/call", {"name": "alpha__echo"})
        self.assertIn("error", body)
        self.assertNotIn("alpha", self.service.gateway.backends.revisions)
        self.alpha.fail_with = None
        self.alpha.received.clear()
        await self.initialize()
        self.assertEqual(self.methods(self.alpha)[:2], ["server/discover", "initialize"])
        self.assertEqual(self.service.gateway.backends.revisions["alpha"], LEGACY)


class ModernCancellationTests(MixedTestCase):
    @run
    async def test_cancelling_before_any_answer_aborts_the_upstream_request(self) -> None:
        """2026-07-28 streamable-http "Cancellation": closing the stream is the signal."""
        await self.start_mixed()
        self.beta.tools.append("hang")
        session = await self.initialize()
        call = ensureDeferred(self.call(session, "tools/call", {"name": "beta__hang"}, rid=5))
        await self.until(
            lambda: any(b.get("params", {}).get("name") == "hang" for _, b in self.beta.received)
        )
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 5, "reason": "test"},
        }
        response, _ = await self.post(cancel, session, {"MCP-Protocol-Version": "2025-11-25"})
        self.assertEqual(response.code, 202)
        await self.until(lambda: self.beta.hung_up)
        call.cancel()
        call.addErrback(lambda _: None)


class ModernNotificationTests(MixedTestCase):
    @run
    async def test_a_modern_backends_listen_stream_feeds_the_legacy_get_stream(self) -> None:
        """subscriptions/listen upstream in place of the GET stream; the backend's
        acknowledgment and subscription id stay between aigw and the backend."""
        await self.start_mixed()
        session = await self.initialize()
        response = await self.open_stream(session)
        chunks: list[bytes] = []
        done = treq.collect(response, chunks.append)
        await self.until(lambda: self.beta.stream_requests)
        self.assertEqual(self.beta.listen_filters[0]["toolsListChanged"], True)
        tag = {"io.modelcontextprotocol/subscriptionId": 1}
        self.beta.push(
            {
                "jsonrpc": "2.0",
                "method": "notifications/tools/list_changed",
                "params": {"_meta": tag},
            }
        )
        await self.until(lambda: b"list_changed" in b"".join(chunks))
        self.service.gateway.close_streams()
        await done
        messages = sse_messages(b"".join(chunks))
        self.assertEqual(
            messages,
            [{"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {}}],
        )


REGION = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "opts": {"type": "object", "properties": {"n": {"type": "integer", "x-mcp-header": "N"}}},
    },
}


class ParamHeaderTests(MixedTestCase):
    """2026-07-28 streamable-http "Custom Headers from Tool Parameters"."""

    @run
    async def test_a_2026_client_must_send_matching_param_headers(self) -> None:
        await self.start_mixed()
        self.alpha.schemas["echo"] = REGION
        response, _ = await self.post(modern("tools/list"), headers=routing("tools/list"))
        self.assertEqual(response.code, 200)

        async def call(arguments: dict[str, Any], extra: dict[str, str]) -> Any:
            message = modern("tools/call", {"name": "alpha__echo", "arguments": arguments})
            headers = {**routing("tools/call", "alpha__echo"), **extra}
            response, body = await self.post(message, headers=headers)
            return response.code, body

        code, body = await call({"region": "us"}, {})
        self.assertEqual((code, body["error"]["code"]), (400, -32020))
        code, body = await call({"region": "us"}, {"Mcp-Param-Region": "eu"})
        self.assertEqual((code, body["error"]["code"]), (400, -32020))
        code, _ = await call(
            {"region": "us", "opts": {"n": 42}},
            {
                "Mcp-Param-Region": "us",
                "Mcp-Param-N": "42.0",
            },
        )
        self.assertEqual(code, 200)
        code, _ = await call({}, {})
        self.assertEqual(code, 200)

    @run
    async def test_calls_to_a_2026_backend_mirror_annotated_arguments(self) -> None:
        await self.start_mixed()
        self.beta.schemas["t1"] = REGION
        session = await self.initialize()
        await self.call(session, "tools/list")
        arguments = {"region": "Hello, 世界", "opts": {"n": 7}}
        body = await self.call(session, "tools/call", {"name": "beta__t1", "arguments": arguments})
        self.assertIn("result", body)
        headers, _ = self.beta.received[-1]
        self.assertEqual(headers["mcp-param-region"], ["=?base64?SGVsbG8sIOS4lueVjA==?="])
        self.assertEqual(headers["mcp-param-n"], ["7"])

    @run
    async def test_a_value_with_no_utf8_is_refused_not_mirrored(self) -> None:
        """A lone surrogate (valid JSON text) in an annotated argument, or in a resource's
        URI (``Mcp-Name``), has no UTF-8 for "Value Encoding": -32602 naming why, nothing
        sent; before, the encoding raised: HTTP 500 and a traceback."""
        await self.start_mixed()
        self.beta.schemas["t1"] = REGION
        session = await self.initialize()
        await self.call(session, "tools/list")
        sent = len(self.beta.received)
        for raw in (
            b'{"jsonrpc":"2.0","id":9,"method":"tools/call",'
            b'"params":{"name":"beta__t1","arguments":{"region":"a\\ud800"}}}',
            b'{"jsonrpc":"2.0","id":9,"method":"resources/read",'
            b'"params":{"uri":"aigw:beta/file:///x\\udfff"}}',
        ):
            response, body = await self.post(None, session, raw=raw)
            self.assertEqual((response.code, body["id"]), (200, 9), body)
            self.assertEqual(body["error"]["code"], -32602, body)
        self.assertIn("lone surrogate", body["error"]["message"])
        self.assertEqual(len(self.beta.received), sent)
