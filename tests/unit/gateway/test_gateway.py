"""The gateway core over in-process fake upstreams, through HTTP on a memory network.

Each test cites the MCP 2025-11-25 section (basic/transports, basic/lifecycle,
server/tools, utilities/pagination) whose rule it checks.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import treq
from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs

from aigw.config import BackendConfig
from aigw.gateway.backends import JOIN_RETRY_SECONDS
from aigw.gateway.streams import SessionStream
from aigw.principal import ANONYMOUS
from aigw.sealed.session_id import session_digest
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import Collect, GatewayTestCase, HangUp, initialize_message
from tests.unit.memory import run


class InitializeTests(GatewayTestCase):
    @run
    async def test_aigw_answers_initialize_with_its_own_server_info(self) -> None:
        """basic/lifecycle: aigw is the server; capabilities are the union of the backends'."""
        await self.start_gateway()
        _, body = await self.post(initialize_message("2025-06-18", 7))
        result = body["result"]
        self.assertEqual(body["id"], 7)
        self.assertEqual(result["serverInfo"]["name"], "aigw")
        self.assertEqual(result["protocolVersion"], "2025-06-18")
        self.assertEqual(result["capabilities"]["tools"], {"listChanged": True})
        self.assertIn("## alpha\nAlpha.", result["instructions"])
        self.assertEqual(len(self.alpha.sessions), 1)
        self.assertEqual(len(self.beta.sessions), 1)

    @run
    async def test_unknown_requested_version_gets_the_latest(self) -> None:
        """basic/lifecycle "Version Negotiation": otherwise the latest version supported."""
        await self.start_gateway()
        _, body = await self.post(initialize_message("1999-01-01", 1))
        self.assertEqual(body["result"]["protocolVersion"], "2025-11-25")

    @run
    async def test_a_failing_backend_is_left_out_not_fatal(self) -> None:
        await self.start_gateway()
        self.beta.fail_with = 500
        session = await self.initialize()
        body = await self.call(session, "tools/list")
        names = [t["name"] for t in body["result"]["tools"]]
        self.assertEqual(names, ["alpha__echo", "alpha__progress", "alpha__link"])

    @run
    async def test_session_fails_only_when_every_backend_fails(self) -> None:
        await self.start_gateway()
        self.alpha.fail_with = self.beta.fail_with = 500
        _, body = await self.post(initialize_message("2025-11-25", 1))
        self.assertIn("error", body)


class ListTests(GatewayTestCase):
    @run
    async def test_tools_from_every_backend_prefixed_in_config_order(self) -> None:
        """Pagination: aigw's cursor carries each backend's, so every page is listed."""
        await self.start_gateway()
        session = await self.initialize()
        names: list[str] = []
        cursor = None
        for _ in range(10):
            body = await self.call(session, "tools/list", {"cursor": cursor} if cursor else None)
            names.extend(t["name"] for t in body["result"]["tools"])
            cursor = body["result"].get("nextCursor")
            if cursor is None:
                break
        self.assertEqual(
            sorted(names),
            sorted(
                ["alpha__echo", "alpha__progress", "alpha__link"]
                + [f"beta__t{i}" for i in range(5)]
            ),
        )
        self.assertEqual(
            names[:5], ["alpha__echo", "alpha__progress", "alpha__link", "beta__t0", "beta__t1"]
        )

    @run
    async def test_forged_cursor_is_invalid_params(self) -> None:
        """utilities/pagination: an invalid cursor is -32602."""
        await self.start_gateway()
        session = await self.initialize()
        body = await self.call(session, "tools/list", {"cursor": "forged"})
        self.assertEqual(body["error"]["code"], -32602)


class CallTests(GatewayTestCase):
    @run
    async def test_call_is_routed_by_prefix_with_the_prefix_stripped(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        body = await self.call(
            session, "tools/call", {"name": "beta__t3", "arguments": {"a": 1}}, rid=42
        )
        self.assertEqual(body["id"], 42)
        self.assertEqual(json.loads(body["result"]["content"][0]["text"]), {"a": 1})
        forwarded = self.beta.received[-1][1]
        self.assertEqual(forwarded["params"]["name"], "t3")

    @run
    async def test_client_credentials_are_never_forwarded(self) -> None:
        """MCP Authorization "Access Token Privilege Restriction": no token passthrough."""
        await self.start_gateway()
        session = await self.initialize()
        await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "alpha__echo"}},
            session,
            {
                "Authorization": "Bearer secret-token",
                "Cookie": "a=b",
                "Proxy-Authorization": "Basic eA==",
                "MCP-Protocol-Version": "2025-11-25",
            },
        )
        headers = self.alpha.received[-1][0]
        for name in ("authorization", "cookie", "proxy-authorization"):
            self.assertNotIn(name, headers)

    @run
    async def test_the_catalog_knows_the_tools_listed_its_selector_allows(self) -> None:
        """What the metrics may name (``lists_tool``): listed and selected, nothing else."""
        await self.start_gateway()
        catalog = self.service.gateway.catalog
        session = await self.initialize()
        self.assertFalse(catalog.lists_tool("alpha", "echo"))
        await self.call(session, "tools/list")
        self.assertTrue(catalog.lists_tool("alpha", "echo"))
        self.assertFalse(catalog.lists_tool("alpha", "secret"))
        self.assertFalse(catalog.lists_tool("alpha", "made-up"))
        self.assertFalse(catalog.lists_tool("beta", "echo"))

    @run
    async def test_filtered_tool_is_not_listed_and_not_forwarded(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        sent = len(self.alpha.received)
        body = await self.call(session, "tools/call", {"name": "alpha__secret"})
        self.assertEqual(body["error"]["code"], -32602)
        self.assertEqual(len(self.alpha.received), sent)

    @run
    async def test_progress_reaches_the_client_before_the_result(self) -> None:
        """basic/transports: the POST reply may be an SSE stream; events relayed as they come."""
        await self.start_gateway()
        session = await self.initialize()
        self.alpha.hold = Deferred()
        response = await self.stream_call(
            session, 5, {"name": "alpha__progress", "_meta": {"progressToken": "p1"}}
        )
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream"])
        chunks: list[bytes] = []
        finished = treq.collect(response, chunks.append)
        await self.until(lambda: b"notifications/progress" in b"".join(chunks))
        seen = b"".join(chunks)
        self.assertIn(b"notifications/progress", seen)
        self.assertNotIn(b"finished", seen)
        self.alpha.hold.callback(None)
        await finished
        self.assertIn(b'"id":5', b"".join(chunks))

    @run
    async def test_upstream_failure_is_a_json_rpc_error_naming_the_backend(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        self.beta.fail_with = 502
        body = await self.call(session, "tools/call", {"name": "beta__t1"})
        self.assertEqual(body["error"]["data"]["backend"], "beta")
        self.assertIn("beta", body["error"]["message"])

    @run
    async def test_json_rpc_error_in_an_http_error_is_relayed(self) -> None:
        """2026-07-28 streamable-http: a refused request is a 4xx whose body is the JSON-RPC
        error; the client gets that error (its own id), not a generic upstream failure."""
        await self.start_gateway()
        session = await self.initialize()
        self.alpha.refuse_with = (400, {"code": -32600, "message": "no back-channel"})
        body = await self.call(session, "tools/call", {"name": "alpha__echo"}, rid=7)
        self.assertEqual(body["id"], 7)
        self.assertEqual(body["error"], {"code": -32600, "message": "no back-channel"})
        self.alpha.refuse_with = None
        self.alpha.fail_with = 400
        body = await self.call(session, "tools/call", {"name": "alpha__echo"}, rid=8)
        self.assertIn("alpha", body["error"]["message"])

    @run
    async def test_forgotten_upstream_session_is_reopened_transparently(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        self.beta.sessions.clear()
        body = await self.call(session, "tools/call", {"name": "beta__t1"})
        self.assertIn("result", body)
        self.assertEqual(len(self.beta.sessions), 1)

    @run
    async def test_session_unknown_with_400_is_reopened_too(self) -> None:
        """server-everything (TypeScript SDK 1.x) answers a session it does not know with
        400 "No valid session ID provided" where 2025-11-25 basic/transports "Session
        Management" says 404: aigw opens a new upstream session all the same."""
        await self.start_gateway()
        session = await self.initialize()
        self.beta.sessions.clear()
        self.beta.unknown_session_400 = True
        body = await self.call(session, "tools/call", {"name": "beta__t1"})
        self.assertIn("result", body)
        self.assertEqual(len(self.beta.sessions), 1)
        self.beta.fail_with = 400
        body = await self.call(session, "tools/call", {"name": "beta__t1"}, rid=2)
        self.assertIn("beta", body["error"]["message"])

    @run
    async def test_resource_links_in_results_are_rewritten(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        body = await self.call(session, "tools/call", {"name": "alpha__link"})
        uri = body["result"]["content"][0]["uri"]
        self.assertNotEqual(uri, "file:///data/x.txt")
        self.assertIn("alpha", uri)

    @run
    async def test_subscribe_to_a_backend_without_a_session_is_refused(self) -> None:
        """2025-11-25 server/resources "Subscriptions": updates come later on the session's
        GET stream; a backend that gave no Mcp-Session-Id has none, so aigw refuses
        (-32600 naming the backend and the reason) instead of a subscription that never fires."""
        beta = FakeUpstream(capabilities={"resources": {"subscribe": True}}, sessionless=True)
        await self.start_gateway(beta=beta)
        session = await self.initialize()
        body = await self.call(session, "resources/subscribe", {"uri": "aigw:beta/file:///x"})
        self.assertEqual(body["error"]["code"], -32600)
        self.assertIn("'beta' keeps no session", body["error"]["message"])
        self.assertEqual(body["error"]["data"], {"backend": "beta", "reason": "no_session_stream"})
        self.assertNotIn("resources/subscribe", [b.get("method") for _, b in beta.received])

    @run
    async def test_ping_is_answered_by_aigw(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        body = await self.call(session, "ping")
        self.assertEqual(body["result"], {})

    @run
    async def test_unknown_method_is_method_not_found(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        body = await self.call(session, "nope/nope")
        self.assertEqual(body["error"]["code"], -32601)


class TransportTests(GatewayTestCase):
    @run
    async def test_parse_error_is_400_with_32700(self) -> None:
        await self.start_gateway()
        response, body = await self.post(None, raw=b"{not json")
        self.assertEqual(response.code, 400)
        self.assertEqual(body["error"]["code"], -32700)

    @run
    async def test_invalid_request_is_400_with_32600(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        response, body = await self.post({"jsonrpc": "1.0", "id": 1, "method": "x"}, session)
        self.assertEqual(response.code, 400)
        self.assertEqual(body["error"]["code"], -32600)

    @run
    async def test_missing_session_id_is_400(self) -> None:
        """basic/transports "Session Management": requests without the id get 400."""
        await self.start_gateway()
        response, _ = await self.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        self.assertEqual(response.code, 400)

    @run
    async def test_unknown_session_id_is_404(self) -> None:
        """basic/transports: an unknown session gets 404 so the client re-initializes."""
        await self.start_gateway()
        response, _ = await self.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, "bogus")
        self.assertEqual(response.code, 404)

    @run
    async def test_unsupported_protocol_version_header_is_400(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        response, _ = await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            session,
            {"MCP-Protocol-Version": "2099-01-01"},
        )
        self.assertEqual(response.code, 400)

    @run
    async def test_accept_without_event_stream_is_406(self) -> None:
        await self.start_gateway()
        response, _ = await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Accept": "application/json"}
        )
        self.assertEqual(response.code, 406)

    @run
    async def test_notification_gets_202(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        response, _ = await self.post(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}, session
        )
        self.assertEqual(response.code, 202)

    @run
    async def test_batches_work_for_2025_03_26_only(self) -> None:
        await self.start_gateway()
        session = await self.initialize("2025-03-26")
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "beta__t0"}},
        ]
        response, body = await self.post(batch, session)
        self.assertEqual(response.code, 200)
        self.assertEqual(sorted(m["id"] for m in body), [1, 2])
        response, _ = await self.post(batch, session, {"MCP-Protocol-Version": "2025-06-18"})
        self.assertEqual(response.code, 400)

    @run
    async def test_foreign_origin_is_403(self) -> None:
        """basic/transports "Security Warning": validate Origin (DNS rebinding)."""
        await self.start_gateway()
        response, _ = await self.post(
            {"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Origin": "http://evil.example"}
        )
        self.assertEqual(response.code, 403)

    @run
    async def test_delete_ends_the_upstream_sessions(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        response = await self.http.delete(
            self.url, headers={"Mcp-Session-Id": [session], "MCP-Protocol-Version": ["2025-11-25"]}
        )
        self.assertEqual(response.code, 204)
        self.assertEqual(len(self.alpha.deleted), 1)
        self.assertEqual(len(self.beta.deleted), 1)

    @run
    async def test_unknown_path_is_json_404(self) -> None:
        await self.start_gateway()
        response = await self.http.get(self.url.replace("/mcp", "/nope"))
        self.assertEqual(response.code, 404)
        self.assertEqual(json.loads(await treq.content(response))["error"], "not_found")

    @run
    async def test_wrong_method_is_json_405(self) -> None:
        await self.start_gateway()
        response = await self.http.put(self.url, data=b"")
        self.assertEqual(response.code, 405)
        self.assertEqual(json.loads(await treq.content(response))["error"], "method_not_allowed")


class LateJoinTests(GatewayTestCase):
    @run
    async def test_backend_down_at_initialize_joins_when_it_answers_again(self) -> None:
        """A backend left out of the session joins on a later list once it is back."""
        await self.start_gateway()
        self.beta.fail_with = 500
        session = await self.initialize()
        self.beta.fail_with = None
        body = await self.call(session, "tools/list")
        names = [t["name"] for t in body["result"]["tools"]]
        self.assertIn("beta__t0", names)
        body = await self.call(session, "tools/call", {"name": "beta__t1"})
        self.assertIn("result", body)

    @run
    async def test_a_failed_join_is_tried_again_after_the_retry_interval(self) -> None:
        """Joining is tried at most every JOIN_RETRY_SECONDS per session and backend."""
        await self.start_gateway()
        self.beta.fail_with = 500
        session = await self.initialize()
        await self.call(session, "tools/list")  # tries beta again: still down
        self.beta.fail_with = None
        body = await self.call(session, "tools/list")
        self.assertNotIn("beta__t0", [t["name"] for t in body["result"]["tools"]])
        await self.network.sleep(JOIN_RETRY_SECONDS)
        body = await self.call(session, "tools/list")
        self.assertIn("beta__t0", [t["name"] for t in body["result"]["tools"]])

    @run
    async def test_a_call_to_a_backend_still_down_says_so(self) -> None:
        """A call naming a backend that was left out of the session opens it then and
        there: still failing, the answer names the backend (-32010), not an unknown tool."""
        await self.start_gateway()
        self.beta.fail_with = 500
        session = await self.initialize()
        body = await self.call(session, "tools/call", {"name": "beta__t1"})
        self.assertEqual(body["error"]["code"], -32010, body)
        self.assertIn("beta", body["error"]["message"])
        self.beta.fail_with = None
        body = await self.call(session, "tools/call", {"name": "beta__t1"})
        self.assertIn("result", body)

    @run
    async def test_a_name_of_no_configured_backend_is_an_unknown_tool(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        body = await self.call(session, "tools/call", {"name": "nowhere__t1"})
        self.assertEqual(body["error"]["code"], -32602)
        self.assertIn("unknown tool", body["error"]["message"])


class CancellationTests(GatewayTestCase):
    @run
    async def test_client_hanging_up_cancels_the_request_upstream(self) -> None:
        """basic/utilities/cancellation: a request nobody waits for is cancelled upstream."""
        await self.start_gateway()
        session = await self.initialize()
        self.alpha.hold = Deferred()
        response = await self.stream_call(session, 9, {"name": "alpha__progress"})
        reader = HangUp()
        response.deliverBody(reader)
        await reader.got
        await self.until(
            lambda: any(
                body.get("method") == "notifications/cancelled" for _, body in self.alpha.received
            )
        )
        cancelled = [
            b for _, b in self.alpha.received if b.get("method") == "notifications/cancelled"
        ]
        self.assertEqual(len(cancelled), 1)
        self.assertIsInstance(cancelled[0]["params"]["requestId"], int)
        self.alpha.hold.callback(None)

    @run
    async def test_a_cancellation_does_not_wait_for_the_slot_its_call_holds(self) -> None:
        """alpha (``max_connections: 1``) holds the one call's reply; the client, still
        reading it, cancels the call: ``notifications/cancelled`` reaches alpha while the
        call holds the only request slot (it goes on the answers' slots,
        ``Upstream.respond``), where it waited for the call's end (here an hour)."""
        self.alpha = FakeUpstream(tools=["progress"])
        url = self.start_upstream(self.alpha)
        await self.start_gateway_with(
            BackendConfig(name="alpha", url=url, timeout=3600.0, max_connections=1)
        )
        session = await self.initialize()
        self.alpha.hold = Deferred()
        await self.stream_call(session, 9, {"name": "alpha__progress"})
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 9, "reason": "test"},
        }
        response, _ = await self.post(cancel, session, {"MCP-Protocol-Version": "2025-11-25"})
        self.assertEqual(response.code, 202)
        await self.until(
            lambda: any(
                body.get("method") == "notifications/cancelled" for _, body in self.alpha.received
            )
        )
        self.assertFalse(self.alpha.hold.called)
        self.alpha.hold.callback(None)


class RoutingDetailTests(GatewayTestCase):
    @run
    async def test_completion_is_routed_by_the_prompt_prefix(self) -> None:
        """server/utilities/completion: ref/prompt names route like prompts."""
        await self.start_gateway()
        session = await self.initialize()
        await self.call(
            session,
            "completion/complete",
            {
                "ref": {"type": "ref/prompt", "name": "beta__greet"},
                "argument": {"name": "who", "value": "A"},
            },
        )
        forwarded = self.beta.received[-1][1]
        self.assertEqual(forwarded["method"], "completion/complete")
        self.assertEqual(forwarded["params"]["ref"]["name"], "greet")

    @run
    async def test_logging_set_level_fans_out_to_backends_with_logging(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        body = await self.call(session, "logging/setLevel", {"level": "debug"})
        self.assertEqual(body["result"], {})
        for upstream in (self.alpha, self.beta):
            methods = [b.get("method") for _, b in upstream.received]
            self.assertIn("logging/setLevel", methods)

    @run
    async def test_roots_list_changed_reaches_every_backend(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        response, _ = await self.post(
            {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}, session
        )
        self.assertEqual(response.code, 202)
        await self.until(
            lambda: all(
                any(b.get("method") == "notifications/roots/list_changed" for _, b in u.received)
                for u in (self.alpha, self.beta)
            )
        )
        for upstream in (self.alpha, self.beta):
            self.assertIn(
                "notifications/roots/list_changed", [b.get("method") for _, b in upstream.received]
            )

    @run
    async def test_access_log_line_names_user_method_and_tool(self) -> None:
        from twisted.logger import Logger

        await self.start_gateway()
        events: list[dict[str, Any]] = []
        self.service.site.access_logger = Logger(namespace="aigw.access", observer=events.append)
        session = await self.initialize()
        await self.call(session, "tools/call", {"name": "beta__t1"})
        call = events[-1]
        self.assertEqual(call["method"], "POST")
        self.assertEqual(call["status"], 200)
        self.assertEqual(call["mcp_method"], "tools/call")
        self.assertEqual(call["tool"], "beta__t1")
        self.assertEqual(call["sub"], "anonymous")
        self.assertIsInstance(call["duration_ms"], float)


class StreamTests(GatewayTestCase):
    @run
    async def test_get_stream_merges_backend_notifications_with_resumable_ids(self) -> None:
        """basic/transports "Listening for Messages" and "Resumability and Redelivery"."""
        await self.start_gateway()
        self.beta.get_status = 200
        session = await self.initialize()
        response = await self.open_stream(session)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream"])
        chunks: list[bytes] = []
        reader = Collect(chunks)
        response.deliverBody(reader)
        await self.until(lambda: self.beta.stream_requests)
        self.beta.push({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}, "ev-7")
        await self.until(lambda: b"list_changed" in b"".join(chunks))
        text = b"".join(chunks).decode()
        self.assertIn("notifications/tools/list_changed", text)
        # The last id: the first is the priming event's, from before the message.
        event_id = [line[4:] for line in text.splitlines() if line.startswith("id: ")][-1]
        self.assertEqual(self.last_ids(session, event_id), {"beta": "ev-7"})
        reader.transport.stopProducing()  # type: ignore[union-attr]
        # The upstream streams linger for the session's next GET stream (linger.py): let
        # them end, so that resuming asks the backends.
        await self.until(lambda: self.beta.streams_closed == [])
        await self.network.sleep(self.config.backends[1].stream_linger + 1)
        self.assertEqual(self.beta.streams_closed, self.beta.stream_requests)

        # The client resumes: each backend is asked to resume from its own last event.
        resumed = await self.open_stream(session, last_event_id=event_id)
        again = Collect([])
        resumed.deliverBody(again)
        await self.until(lambda: len(self.beta.stream_requests) > 1)
        last = self.beta.stream_requests[-1].getHeader(b"last-event-id")
        self.assertEqual(last, b"ev-7")
        again.transport.stopProducing()  # type: ignore[union-attr]

    @run
    async def test_a_hostile_last_event_id_opens_the_stream_from_the_start(self) -> None:
        """A ``Last-Event-ID`` aigw never wrote (basic/transports "Resumability and
        Redelivery": the server MAY replay, so it may also not) opens the stream, each
        backend followed from its start, with nothing logged as a failure: each counted,
        one warning for them all (a client may send one with every GET)."""
        await self.start_gateway()
        self.beta.get_status = 200
        deep = base64.urlsafe_b64encode(b"[" * 3000).decode()
        unsealed = base64.urlsafe_b64encode(b'{"beta":"ev-7"}').decode().rstrip("=")
        hostile = [deep, "not base64 !", "\xe9t\xe9", "A" * 5000, "W10", unsealed]
        with capturedLogs() as events:
            for value in hostile:
                session = await self.initialize()
                asked = len(self.beta.stream_requests)
                response = await self.open_stream(session, last_event_id=value)
                self.assertEqual(response.code, 200, value)
                reader = Collect([])
                response.deliverBody(reader)
                await self.until(lambda asked=asked: len(self.beta.stream_requests) > asked)
                self.assertIsNone(self.beta.stream_requests[-1].getHeader(b"last-event-id"))
                reader.transport.stopProducing()  # type: ignore[union-attr]
        self.assertEqual([e for e in events if "log_failure" in e], [])
        self.assertEqual(self.service.gateway.refused_event_ids.count, len(hostile))
        warned = [e for e in events if "Last-Event-ID(s) refused" in e.get("log_format", "")]
        self.assertEqual(len(warned), 1)

    @run
    async def test_another_sessions_merged_id_resumes_no_backend(self) -> None:
        """The merged id is sealed for its session (``sealed/event_id.py``): a client
        sending the real id of another session's stream (another user's: sessions'
        event stores may be one, with ids one can guess) has its own backend streams
        opened fresh, and the backend never sees the other session's ids (2025-11-25
        basic/transports "Resumability and Redelivery": no replay of another stream's
        messages)."""
        await self.start_gateway()
        self.beta.get_status = 200
        victim = await self.initialize()
        response = await self.open_stream(victim)
        reader = Collect([])
        response.deliverBody(reader)
        await self.until(lambda: self.beta.stream_requests)
        self.beta.push({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}, "ev-7")
        await self.until(lambda: b"list_changed" in b"".join(reader.chunks))
        text = b"".join(reader.chunks).decode()
        stolen = [line[4:] for line in text.splitlines() if line.startswith("id: ")][-1]
        self.assertEqual(self.last_ids(victim, stolen), {"beta": "ev-7"})

        thief = await self.initialize()
        asked = len(self.beta.stream_requests)
        response = await self.open_stream(thief, last_event_id=stolen)
        self.assertEqual(response.code, 200)
        again = Collect([])
        response.deliverBody(again)
        await self.until(lambda: len(self.beta.stream_requests) > asked)
        self.assertIsNone(self.beta.stream_requests[-1].getHeader(b"last-event-id"))
        self.assertEqual(self.service.gateway.refused_event_ids.count, 1)
        for stream in (reader, again):
            stream.transport.stopProducing()  # type: ignore[union-attr]


class StreamsOfTests(GatewayTestCase):
    """``Gateway.streams_of`` (asked per refused GET, per probe note and per completion
    note from another process) finds a session's streams by its binding, in an index
    that holds what ``open_streams`` holds, in its order, however streams come and go."""

    def assertInStep(self) -> None:
        """The index: the open GET streams by binding, in the order they opened, and no
        empty group; ``streams_of`` each binding's open ones, as a scan would find."""
        gateway = self.service.gateway
        derived: dict[str, dict[SessionStream, None]] = {}
        for stream in gateway.open_streams:
            if isinstance(stream, SessionStream):
                derived.setdefault(stream.session.binding, {})[stream] = None
        index = gateway._streams_by_binding.snapshot()
        self.assertEqual(
            {b: list(s) for b, s in index.items()}, {b: list(s) for b, s in derived.items()}
        )

    def streams_of(self, session: str) -> list[SessionStream]:
        self.assertInStep()
        return self.service.gateway.streams_of(session_digest(session))

    async def opened(self, session: str) -> Collect:
        response = await self.open_stream(session)
        self.assertEqual(response.code, 200)
        reader = Collect([])
        response.deliverBody(reader)
        await self.network.settle()
        return reader

    @run
    async def test_a_sessions_streams_are_found_oldest_first_and_no_others(self) -> None:
        await self.start_gateway()
        gateway = self.service.gateway
        one, two = await self.initialize(), await self.initialize()
        first = await self.opened(one)
        await self.opened(two)
        [held] = self.streams_of(one)
        [other] = self.streams_of(two)
        self.assertIsNot(held, other)
        newest = gateway.session_stream(gateway.open_session(ANONYMOUS, one), [].append, None)
        gateway.track_stream(newest)  # a reconnect while the held one still looks open
        nobodys = object()
        gateway.track_stream(nobodys)  # a stream of no session is not indexed
        self.assertEqual(self.streams_of(one), [held, newest])
        held.close()  # closed, not yet untracked: no longer found
        self.assertEqual(self.streams_of(one), [newest])
        newest.close()
        gateway.untrack_stream(newest)
        gateway.untrack_stream(nobodys)
        self.assertEqual(self.streams_of(one), [])
        first.transport.stopProducing()  # type: ignore[union-attr]
        await self.until(lambda: held not in gateway.open_streams)
        self.assertEqual(self.streams_of(one), [])
        self.assertEqual(self.streams_of(two), [other])
        gateway.close_streams()  # shutdown
        await self.until(
            lambda: not [s for s in gateway.open_streams if isinstance(s, SessionStream)]
        )
        self.assertEqual(self.streams_of(two), [])
        self.assertEqual(gateway._streams_by_binding.snapshot(), {})


class NameLearningTests(GatewayTestCase):
    """A mapped (hashed) tool name listed by another aigw process of the deployment:
    this process lists the backend once to route it (README, several processes)."""

    @run
    async def test_mapped_name_listed_elsewhere_is_learned_once(self) -> None:
        from aigw.protocol.names import NameTable

        await self.start_gateway(beta=FakeUpstream(tools=["dotted.tool.name"]))
        session = await self.initialize()
        listed = await self.call(session, "tools/list", {})
        mapped = next(t["name"] for t in listed["result"]["tools"] if t["name"].startswith("beta"))
        self.assertNotEqual(mapped, "beta__dotted.tool.name")
        gateway = self.service.gateway
        gateway.catalog._names["tool"] = NameTable()  # as in a process that never listed
        gateway.catalog._listed.clear()

        def lists() -> int:
            return sum(1 for _, b in self.beta.received if b.get("method") == "tools/list")

        before = lists()
        body = await self.call(session, "tools/call", {"name": mapped, "arguments": {"a": 1}})
        self.assertNotIn("error", body)
        self.assertEqual(lists(), before + 1)
        calls = [b for _, b in self.beta.received if b.get("method") == "tools/call"]
        self.assertEqual(calls[-1]["params"]["name"], "dotted.tool.name")
        # Made-up names of the mapped shape list nothing more within LEARN_AGAIN_SECONDS.
        for n in range(3):
            body = await self.call(session, "tools/call", {"name": f"beta__x_{n:08x}"})
            self.assertEqual(body["error"]["code"], -32602)
        self.assertEqual(lists(), before + 1)
