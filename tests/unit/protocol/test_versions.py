"""``versions.FEATURE_REQUESTS``: the feature requests written once, read by the access
policy's method names, the metrics' method allow-list and the 2026-07-28 endpoint."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.config.values import DECIDED_METHODS
from aigw.metrics.labels import METHODS
from aigw.protocol.versions import FEATURE_REQUESTS
from aigw.web.mcp.stateless_era import MODERN_METHODS, REPLACED_BY

LISTS = ("tools/list", "prompts/list", "resources/list", "resources/templates/list")
ROUTED = ("tools/call", "prompts/get", "resources/read", "completion/complete")
SUBSCRIBE = ("resources/subscribe", "resources/unsubscribe")


class FeatureRequestTests(SynchronousTestCase):
    def test_the_feature_requests_of_2025_11_25(self) -> None:
        self.assertEqual(sorted(FEATURE_REQUESTS), sorted(LISTS + ROUTED + SUBSCRIBE))
        self.assertEqual(len(set(FEATURE_REQUESTS)), len(FEATURE_REQUESTS))

    def test_the_policy_decides_on_each_in_order(self) -> None:
        """``aigw access explain --method`` offers them in this order."""
        self.assertEqual(
            DECIDED_METHODS,
            (
                "tools/list",
                "tools/call",
                "prompts/list",
                "prompts/get",
                "resources/list",
                "resources/templates/list",
                "resources/read",
                "resources/subscribe",
                "resources/unsubscribe",
                "completion/complete",
            ),
        )

    def test_metrics_count_each_and_the_session_requests(self) -> None:
        session = {"initialize", "ping", "logging/setLevel", "subscriptions/listen"}
        tasks = {"tasks/get", "tasks/list", "tasks/result", "tasks/cancel"}
        self.assertEqual(METHODS, set(LISTS + ROUTED + SUBSCRIBE) | session | tasks)

    def test_2026_07_28_keeps_all_but_subscribing(self) -> None:
        self.assertEqual(
            MODERN_METHODS, set(LISTS + ROUTED) | {"server/discover", "subscriptions/listen"}
        )
        self.assertTrue(set(SUBSCRIBE) <= REPLACED_BY.keys())
