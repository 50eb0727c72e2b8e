"""``pong``: aigw's own answer to a backend's ping (basic/utilities/ping), and only to it."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.protocol.ping import pong


class PongTests(SynchronousTestCase):
    def test_a_ping_gets_an_empty_result_with_its_id(self) -> None:
        for request_id in (0, 7, "p-1"):
            ping = {"jsonrpc": "2.0", "id": request_id, "method": "ping"}
            self.assertEqual(pong(ping), {"jsonrpc": "2.0", "id": request_id, "result": {}})

    def test_anything_else_is_not_aigws_to_answer(self) -> None:
        others = (
            {"jsonrpc": "2.0", "method": "ping"},  # a notification expects no answer
            {"jsonrpc": "2.0", "id": 1, "method": "roots/list"},
            {"jsonrpc": "2.0", "id": 1, "result": {}},
            {"jsonrpc": "2.0", "id": {"an": "object"}, "method": "ping"},  # no JSON-RPC id
            {"jsonrpc": "2.0", "id": [[[]]], "method": "ping"},
            "ping",
            None,
        )
        for other in others:
            self.assertIsNone(pong(other))
