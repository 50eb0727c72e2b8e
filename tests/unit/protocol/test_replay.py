"""Which JSON-RPC bodies may go to a backend twice (RFC 9112 section 9.3.1)."""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from aigw.protocol import jsonrpc
from aigw.protocol.replay import replayable


def body(value: Any) -> bytes:
    return jsonrpc.dumps(value)


class ReplayableTests(SynchronousTestCase):
    def test_reads_are(self) -> None:
        for method in (
            "ping",
            "server/discover",
            "tools/list",
            "prompts/list",
            "resources/list",
            "resources/templates/list",
            "resources/read",
            "prompts/get",
            "completion/complete",
        ):
            self.assertTrue(replayable(body(jsonrpc.request(1, method, {}))), method)

    def test_setting_a_state_to_a_value_is(self) -> None:
        for method in ("logging/setLevel", "resources/subscribe", "resources/unsubscribe"):
            self.assertTrue(replayable(body(jsonrpc.request(1, method, {}))), method)

    def test_a_listen_is(self) -> None:
        self.assertTrue(replayable(body(jsonrpc.request(1, "subscriptions/listen", {}))))

    def test_a_tool_call_is_not(self) -> None:
        call = jsonrpc.request(7, "tools/call", {"name": "send_mail", "arguments": {}})
        self.assertFalse(replayable(body(call)))

    def test_initialize_is_not(self) -> None:
        """Each copy would create an upstream session."""
        self.assertFalse(replayable(body(jsonrpc.request(1, "initialize", {}))))

    def test_notifications_that_state_a_fact_are_progress_is_not(self) -> None:
        for method in (
            "notifications/initialized",
            "notifications/cancelled",
            "notifications/roots/list_changed",
        ):
            self.assertTrue(replayable(body(jsonrpc.notification(method, {}))), method)
        progress = jsonrpc.notification("notifications/progress", {"progressToken": 1})
        self.assertFalse(replayable(body(progress)))

    def test_a_clients_response_is(self) -> None:
        self.assertTrue(replayable(body(jsonrpc.result_response(3, {"roots": []}))))
        error = jsonrpc.error_response(3, jsonrpc.error_object(-32601, "no"))
        self.assertTrue(replayable(body(error)))

    def test_an_unknown_method_is_not(self) -> None:
        self.assertFalse(replayable(body(jsonrpc.request(1, "vendor/doThings", {}))))

    def test_a_batch_only_when_every_message_is(self) -> None:
        ping = jsonrpc.request(1, "ping")
        self.assertTrue(replayable(body([ping, jsonrpc.request(2, "tools/list")])))
        self.assertFalse(replayable(body([ping, jsonrpc.request(2, "tools/call", {})])))
        self.assertFalse(replayable(body([])))

    def test_what_is_not_json_rpc_is_not(self) -> None:
        for raw in (b"", b"{", b"[1]", b'"ping"', json.dumps({"id": 1}).encode()):
            self.assertFalse(replayable(raw), raw)
