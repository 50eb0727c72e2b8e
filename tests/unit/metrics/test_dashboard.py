"""etc/grafana/aigw.json: every metric its queries use is one aigw exports (issue 12, item 7)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from twisted.trial.unittest import SynchronousTestCase

from aigw.metrics import GatewayMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "etc" / "grafana" / "aigw.json"
#: PromQL words that are not metric names (functions are followed by "(" anyway).
KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan"}
)
#: What PromQL holds besides names: strings, label matchers, ranges, grouping lists.
_NOT_NAMES = re.compile(
    r'"(?:[^"\\]|\\.)*"'
    r"|'(?:[^'\\]|\\.)*'"
    r"|\{[^}]*\}"
    r"|\[[^\]]*\]"
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    bare = _NOT_NAMES.sub(" ", expr)
    return {name for name in _IDENTIFIER.findall(bare) if name.lower() not in KEYWORDS}


def queries(node: Any) -> Iterator[str]:
    """Every PromQL query of the dashboard: panels' (rows' too) and variables'."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "definition" and isinstance(value, str):
                yield from _label_values(value)
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def _label_values(definition: str) -> Iterator[str]:
    """The metric of a ``label_values(metric, label)`` variable."""
    match = re.fullmatch(r"label_values\((.*),\s*\w+\)", definition.strip())
    if match:
        yield match.group(1)


def exported() -> dict[str, str]:
    """Every metric family a gateway's registry exports, with its type."""
    metrics = GatewayMetrics(["files"], lambda backend, name: True)
    metrics.watch_streaming_sessions(lambda: 0)
    metrics.watch_pooled_upstream_sessions(lambda: 0)
    metrics.watch_open_streams(lambda: 0)
    metrics.watch_limiter_store_failures(lambda: 0)
    metrics.watch_session_store_failures(lambda: 0)
    metrics.watch_linger_dropped_messages(lambda: 0)
    metrics.watch_stream_probes(dict)
    metrics.watch_refused_event_ids(lambda: 0)
    metrics.watch_audit_file(lambda: 0, lambda: None)
    text = generate_latest(metrics.registry).decode()
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


class DashboardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dashboard = json.loads(DASHBOARD.read_text())

    def test_every_metric_its_queries_use_is_exported(self) -> None:
        if not sys.platform.startswith("linux"):
            self.skipTest("process_* metrics exist on Linux only")
        families = exported()
        used: set[str] = set()
        for expr in queries(self.dashboard):
            used |= metric_names(expr)
        self.assertIn("aigw_mcp_gateway_seconds_bucket", used)
        for name in sorted(used):
            if name in families:
                continue
            base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), "")
            self.assertEqual(families.get(base), "histogram", f"{name} is not exported")

    def test_the_panels_the_issue_asks_for(self) -> None:
        used: set[str] = set()
        for expr in queries(self.dashboard):
            used |= metric_names(expr)
        for name in (
            "aigw_mcp_requests_total",
            "aigw_mcp_gateway_seconds_bucket",
            "aigw_mcp_upstream_seconds_bucket",
            "aigw_auth_refusals_total",
            "aigw_open_streams",
            "aigw_streaming_sessions",
            "aigw_pooled_upstream_sessions",
            "aigw_upstream_connections_total",
            "aigw_config_reloads_total",
            "aigw_stream_probes_total",
        ):
            self.assertIn(name, used)

    def test_a_dashboard_to_import_on_any_prometheus(self) -> None:
        self.assertGreaterEqual(self.dashboard["schemaVersion"], 39)
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertEqual(variables["DS_PROMETHEUS"]["type"], "datasource")
        for panel in self.dashboard["panels"]:
            if panel["type"] != "row":
                self.assertEqual(panel["datasource"]["uid"], "${DS_PROMETHEUS}", panel["title"])
                self.assertTrue(panel["targets"], panel["title"])

    def test_names_are_found_in_promql(self) -> None:
        expr = (
            'histogram_quantile(0.95, sum by (le, backend) (rate(aigw_x_bucket{a="b",c=~"d"}'
            "[$__rate_interval]))) / on (instance) group_left aigw_y offset 5m + 2 * time()"
        )
        self.assertEqual(metric_names(expr), {"aigw_x_bucket", "aigw_y"})
