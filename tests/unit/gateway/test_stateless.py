"""MCP 2026-07-28 clients over session-based (2025-11-25) fake upstreams.

Each test cites the 2026-07-28 section (basic/transports/streamable-http,
basic/versioning, server/discover, server/utilities/caching) whose rule it checks.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import treq

from aigw.protocol.revision import decode_header_value
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import (
    MODERN,
    GatewayTestCase,
    modern,
    post_listen,
    routing,
    sse_messages,
)
from tests.unit.memory import run


class StatelessTestCase(GatewayTestCase):
    async def ask(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A well-formed 2026-07-28 request; the JSON answer."""
        source = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}.get(method)
        name = (params or {}).get(source) if source else None
        response, body = await self.post(modern(method, params), headers=routing(method, name))
        self.assertEqual(response.code, 200, body)
        return body

    def initializes(self, upstream: Any) -> int:
        return sum(1 for _, body in upstream.received if body.get("method") == "initialize")


class DiscoverTests(StatelessTestCase):
    @run
    async def test_discover_names_every_version_and_the_users_capabilities(self) -> None:
        """server/discover; caching "Cacheable Results": ttlMs and cacheScope."""
        await self.start_gateway()
        body = await self.ask("server/discover")
        result = body["result"]
        self.assertEqual(result["resultType"], "complete")
        self.assertEqual(result["supportedVersions"][0], MODERN)
        self.assertIn("2025-11-25", result["supportedVersions"])
        self.assertIn("tools", result["capabilities"])
        self.assertEqual(result["cacheScope"], "private")
        self.assertGreaterEqual(result["ttlMs"], 0)
        self.assertEqual(result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "aigw")


class RequestTests(StatelessTestCase):
    @run
    async def test_lists_are_private_cacheable_and_reuse_pooled_upstream_sessions(self) -> None:
        """caching "Choosing a Cache Scope": a list filtered per user is private."""
        await self.start_gateway()
        first = await self.ask("tools/list")
        names = [t["name"] for t in first["result"]["tools"]]
        self.assertIn("alpha__echo", names)
        self.assertNotIn("alpha__secret", names)
        self.assertEqual(first["result"]["cacheScope"], "private")
        self.assertEqual(first["result"]["resultType"], "complete")
        await self.ask("tools/list")
        await self.ask("tools/call", {"name": "alpha__echo", "arguments": {"x": 1}})
        self.assertEqual(self.initializes(self.alpha), 1)
        self.assertEqual(self.initializes(self.beta), 1)

    @run
    async def test_a_request_abandoned_while_sessions_open_is_not_forwarded(self) -> None:
        """streamable-http "Cancellation": closing the stream cancels the request, also
        while aigw is still opening the user's upstream sessions."""
        from twisted.internet.defer import Deferred

        await self.start_gateway()
        self.alpha.init_hold = Deferred()
        held = self.alpha.init_hold
        message = modern("tools/call", {"name": "alpha__echo", "arguments": {}})
        posting = self.http.post(
            self.url,
            data=json.dumps(message).encode(),
            headers={
                k: [v]
                for k, v in {
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                    **routing("tools/call", "alpha__echo"),
                }.items()
            },
        )
        await self.until(lambda: self.initializes(self.alpha))
        posting.cancel()
        with self.assertRaises(Exception):  # noqa: B017 (cancelled: how, is treq's business)
            await posting
        await self.network.settle()  # the hang-up reaches the gateway
        held.callback(None)
        await self.ask("tools/list")
        calls = [b for _, b in self.alpha.received if b.get("method") == "tools/call"]
        self.assertEqual(calls, [])

    @run
    async def test_the_envelope_is_not_forwarded_to_a_session_based_backend(self) -> None:
        await self.start_gateway()
        await self.ask(
            "tools/call",
            {"name": "alpha__echo", "arguments": {}, "_meta": {"progressToken": "p"}},
        )
        _, forwarded = self.alpha.received[-1]
        self.assertEqual(forwarded["params"]["name"], "echo")
        self.assertEqual(forwarded["params"]["_meta"], {"progressToken": "p"})

    @run
    async def test_progress_then_result_on_the_requests_own_stream(self) -> None:
        """streamable-http "Receiving Messages": notifications related to the request."""
        await self.start_gateway()
        params = {"name": "alpha__progress", "_meta": {"progressToken": 9}}
        response, body = await self.post(
            modern("tools/call", params, rid="c1"), headers=routing("tools/call", "alpha__progress")
        )
        self.assertEqual(response.code, 200)
        messages = sse_messages(body)
        self.assertEqual(messages[0]["method"], "notifications/progress")
        self.assertEqual(messages[0]["params"]["progressToken"], 9)
        self.assertEqual(messages[-1]["id"], "c1")
        self.assertEqual(messages[-1]["result"]["resultType"], "complete")

    @run
    async def test_forgotten_upstream_session_is_reopened_once_and_pooled(self) -> None:
        await self.start_gateway()
        await self.ask("tools/list")
        self.beta.sessions.clear()
        body = await self.ask("tools/call", {"name": "beta__t1", "arguments": {}})
        self.assertIn("content", body["result"])
        await self.ask("tools/call", {"name": "beta__t2", "arguments": {}})
        self.assertEqual(self.initializes(self.beta), 2)
        self.assertEqual(len(self.beta.sessions), 1)

    @run
    async def test_unknown_method_is_404_with_method_not_found(self) -> None:
        """streamable-http "Protocol Version Header": 404 and -32601."""
        await self.start_gateway()
        response, body = await self.post(modern("nope/nope"), headers=routing("nope/nope"))
        self.assertEqual(response.code, 404)
        self.assertEqual(body["error"]["code"], -32601)
        self.assertEqual(body["id"], 1)

    @run
    async def test_methods_of_older_revisions_are_refused_by_name(self) -> None:
        """2026-07-28 schema: no ping, logging/setLevel or resources/subscribe."""
        await self.start_gateway()
        for method in ("ping", "logging/setLevel", "resources/subscribe"):
            response, body = await self.post(modern(method), headers=routing(method))
            self.assertEqual(response.code, 404, body)
            self.assertEqual(body["error"]["code"], -32601)
            self.assertIn("2026-07-28", body["error"]["message"])
        self.assertEqual(self.initializes(self.alpha), 0)

    @run
    async def test_session_id_header_is_ignored(self) -> None:
        """streamable-http "Backward Compatibility": ignore Mcp-Session-Id."""
        await self.start_gateway()
        response, body = await self.post(
            modern("tools/list"), session="whatever", headers=routing("tools/list")
        )
        self.assertEqual(response.code, 200, body)
        self.assertIsNone(response.headers.getRawHeaders(b"mcp-session-id"))

    @run
    async def test_initialize_still_opens_a_legacy_session(self) -> None:
        """basic/versioning "Backward Compatibility": initialize selects legacy semantics."""
        await self.start_gateway()
        session = await self.initialize()
        body = await self.call(session, "tools/list")
        self.assertIn("tools", body["result"])
        self.assertNotIn("resultType", body["result"])


class ValidationTests(StatelessTestCase):
    async def refused(
        self, message: Any, headers: dict[str, str], status: int = 400
    ) -> dict[str, Any]:
        response, body = await self.post(message, headers=headers)
        self.assertEqual(response.code, status, body)
        self.assertIsInstance(body, dict)
        result: dict[str, Any] = body
        return result

    @run
    async def test_unknown_version_lists_the_supported_ones(self) -> None:
        """basic/versioning "Protocol Version Negotiation": -32022 with data.supported."""
        await self.start_gateway()
        body = await self.refused(
            modern("ping"), {"MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "ping"}
        )
        self.assertEqual(body["error"]["code"], -32022)
        self.assertIn(MODERN, body["error"]["data"]["supported"])
        self.assertIn("2025-11-25", body["error"]["data"]["supported"])
        self.assertEqual(body["error"]["data"]["requested"], "2099-01-01")

    @run
    async def test_header_and_meta_versions_must_match(self) -> None:
        """streamable-http "Protocol Version Header": HeaderMismatch (-32020)."""
        await self.start_gateway()
        message = modern("ping")
        message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2025-11-25"
        body = await self.refused(message, routing("ping"))
        self.assertEqual(body["error"]["code"], -32020)

    @run
    async def test_modern_body_under_a_legacy_header_is_a_mismatch(self) -> None:
        await self.start_gateway()
        body = await self.refused(modern("ping"), {"MCP-Protocol-Version": "2025-11-25"})
        self.assertEqual(body["error"]["code"], -32020)

    @run
    async def test_missing_or_wrong_method_header_is_a_mismatch(self) -> None:
        await self.start_gateway()
        body = await self.refused(modern("tools/list"), {"MCP-Protocol-Version": MODERN})
        self.assertEqual(body["error"]["code"], -32020)
        body = await self.refused(modern("tools/list"), routing("prompts/list"))
        self.assertEqual(body["error"]["code"], -32020)

    @run
    async def test_name_header_must_match_the_body(self) -> None:
        """streamable-http "Server Validation": the body decides, a differing header is refused."""
        await self.start_gateway()
        call = modern("tools/call", {"name": "alpha__echo", "arguments": {}})
        body = await self.refused(call, routing("tools/call"))
        self.assertEqual(body["error"]["code"], -32020)
        body = await self.refused(call, routing("tools/call", "beta__t1"))
        self.assertEqual(body["error"]["code"], -32020)
        self.assertEqual(self.initializes(self.alpha), 0)

    @run
    async def test_base64_name_header_is_decoded_before_comparing(self) -> None:
        """streamable-http "Value Encoding": the =?base64?...?= sentinel."""
        await self.start_gateway()
        encoded = "=?base64?" + base64.b64encode(b"alpha__echo").decode() + "?="
        call = modern("tools/call", {"name": "alpha__echo", "arguments": {}})
        response, body = await self.post(call, headers=routing("tools/call", encoded))
        self.assertEqual(response.code, 200, body)
        bad = "=?base64?" + base64.b64encode(b"alpha__secret").decode() + "?="
        refused = await self.refused(call, routing("tools/call", bad))
        self.assertEqual(refused["error"]["code"], -32020)

    @run
    async def test_batches_and_responses_are_invalid_requests(self) -> None:
        """streamable-http "Sending Messages" 4: one request or notification per POST."""
        await self.start_gateway()
        body = await self.refused([modern("ping")], routing("ping"))
        self.assertEqual(body["error"]["code"], -32600)
        body = await self.refused({"jsonrpc": "2.0", "id": 1, "result": {}}, routing("ping"))
        self.assertEqual(body["error"]["code"], -32600)

    @run
    async def test_get_and_delete_are_405_for_modern_clients(self) -> None:
        """streamable-http "Backward Compatibility": no GET stream, no sessions."""
        await self.start_gateway()
        for method in ("GET", "DELETE"):
            response = await self.http.request(
                method,
                self.url,
                headers={
                    "Accept": ["text/event-stream"],
                    "MCP-Protocol-Version": [MODERN],
                },
            )
            self.assertEqual(response.code, 405)
            self.assertEqual(response.headers.getRawHeaders(b"allow"), [b"POST"])
            await response.content()


class HeaderValueTests(StatelessTestCase):
    def test_plain_base64_and_malformed_values(self) -> None:
        self.assertEqual(decode_header_value("get_weather"), "get_weather")
        encoded = "=?base64?" + base64.b64encode("Hello, 世界".encode()).decode() + "?="
        self.assertEqual(decode_header_value(encoded), "Hello, 世界")
        self.assertIsNone(decode_header_value("=?base64?not base64!?="))
        self.assertIsNone(decode_header_value("caf\u00e9"))


class ListenTests(StatelessTestCase):
    async def open_listen(self, notifications: dict[str, Any]) -> tuple[Any, list[bytes], Any]:
        """POST subscriptions/listen; returns the response, the chunks so far, and the
        Deferred of the body's end."""
        response = await post_listen(self.http, self.url, notifications, "L1")
        chunks: list[bytes] = []
        done = treq.collect(response, chunks.append)
        return response, chunks, done

    @run
    async def test_ack_first_then_only_the_asked_for_notifications_tagged(self) -> None:
        """basic/patterns/subscriptions: acknowledgment first, filter honoured, subscription id
        in _meta, graceful result when aigw ends the stream."""
        await self.start_gateway()
        self.alpha.get_status = 200
        response, chunks, done = await self.open_listen({"toolsListChanged": True})
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream"])
        await self.until(lambda: self.alpha.stream_requests and chunks)
        self.alpha.push({"jsonrpc": "2.0", "method": "notifications/prompts/list_changed"})
        self.alpha.push({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        await self.until(lambda: b"tools/list_changed" in b"".join(chunks))
        self.service.gateway.close_streams()
        await done
        messages = sse_messages(b"".join(chunks))
        ack, change, end = messages
        self.assertEqual(ack["method"], "notifications/subscriptions/acknowledged")
        self.assertEqual(ack["params"]["notifications"], {"toolsListChanged": True})
        self.assertEqual(ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "L1")
        self.assertEqual(change["method"], "notifications/tools/list_changed")
        self.assertEqual(change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "L1")
        self.assertEqual(end["id"], "L1")
        self.assertEqual(end["result"]["resultType"], "complete")

    @run
    async def test_upstream_stream_opening_after_the_listen_ended_is_dropped(self) -> None:
        """A listen that ends while its upstream GET is still opening must not leave that
        GET open: servers allow one per session (2025-11-25 basic/transports "Multiple
        Connections"), and the user's next listen would get 409 for good."""
        from twisted.internet.defer import Deferred

        await self.start_gateway()
        self.alpha.get_status = 200
        self.alpha.get_hold = Deferred()
        _, chunks, done = await self.open_listen({"toolsListChanged": True})
        await self.until(lambda: self.alpha.stream_requests and chunks)
        self.service.gateway.close_streams()
        await done
        self.alpha.get_hold.callback(None)
        await self.until(lambda: self.alpha.streams_closed)

    @run
    async def test_no_subscription_on_a_backend_without_a_session(self) -> None:
        """A session-less 2025-11-25 backend has no stream for updates: the URI is left
        out of the acknowledgment (subscriptions "Acknowledgment") and not subscribed."""
        beta = FakeUpstream(capabilities={"resources": {"subscribe": True}}, sessionless=True)
        await self.start_gateway(beta=beta)
        uri = "aigw:beta/file:///x"
        _, chunks, done = await self.open_listen({"resourceSubscriptions": [uri]})
        await self.until(lambda: chunks)
        ack = sse_messages(b"".join(chunks))[0]
        self.assertEqual(ack["method"], "notifications/subscriptions/acknowledged")
        self.assertEqual(ack["params"]["notifications"], {})
        methods = [b.get("method") for _, b in beta.received]
        self.assertNotIn("resources/subscribe", methods)
        self.service.gateway.close_streams()
        await done

    @run
    async def test_resource_subscription_is_made_upstream_and_updates_pass(self) -> None:
        await self.start_gateway()
        self.alpha.capabilities = {"resources": {"subscribe": True}}
        self.alpha.get_status = 200
        uri = "aigw:alpha/file:///x"
        _, chunks, done = await self.open_listen(
            {"resourceSubscriptions": [uri, "aigw:nosuch/file:///y", "file:///z"]}
        )
        await self.until(lambda: self.alpha.stream_requests and chunks)
        subscribed = [b for _, b in self.alpha.received if b.get("method") == "resources/subscribe"]
        self.assertEqual(subscribed[0]["params"]["uri"], "file:///x")
        self.alpha.push(
            {
                "jsonrpc": "2.0",
                "method": "notifications/resources/updated",
                "params": {"uri": "file:///x"},
            }
        )
        await self.until(lambda: b"resources/updated" in b"".join(chunks))
        self.service.gateway.close_streams()
        await done
        ack, update, _ = sse_messages(b"".join(chunks))
        self.assertEqual(ack["params"]["notifications"], {"resourceSubscriptions": [uri]})
        self.assertEqual(update["params"]["uri"], uri)
