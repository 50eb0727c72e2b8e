"""metrics.observer.GatewayMetrics: gateway events as Prometheus series."""

from __future__ import annotations

import inspect
import math
import sys

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw import __version__
from aigw.events import (
    AccessDecided,
    AuthenticationRefused,
    AuthServerFetched,
    GatewayObserver,
    Outcome,
    RequestFinished,
    ToolFlagged,
    UpstreamConnection,
)
from aigw.metrics import GatewayMetrics, new_registry
from aigw.principal import Principal
from tests.fakes import parameters, protocol_members

ALICE = Principal(
    "https://as.example",
    "alice-subject",
    "alice-client",
    frozenset({"mcp"}),
    {"email": "alice@example.com"},
    "alice-token-id",
    None,
)


def finished(
    method: str = "tools/call",
    backend: str | None = "files",
    name: str | None = "read",
    outcome: Outcome = "ok",
    seconds: float = 0.03,
    upstream_seconds: float = 0.02,
) -> RequestFinished:
    return RequestFinished(method, ALICE, backend, name, outcome, None, seconds, upstream_seconds)


def no_x(backend: str, name: str) -> bool:
    """The tool selector of the tests: any tool not starting with x."""
    return not name.startswith("x")


class MetricsTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.metrics = GatewayMetrics(["files", "mail"], no_x, seconds=self.clock.seconds)

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    def series(self, name: str) -> list[dict[str, str]]:
        """The label sets of every sample called ``name``."""
        return [
            sample.labels
            for metric in self.metrics.registry.collect()
            for sample in metric.samples
            if sample.name == name
        ]


class ObserverProtocolTests(SynchronousTestCase):
    def test_gateway_metrics_is_a_gateway_observer(self) -> None:
        """As tests/unit/test_fakes.py holds the fakes to their Protocols."""
        metrics = GatewayMetrics([], no_x)
        members = protocol_members(GatewayObserver)
        self.assertTrue(members)
        for name, declared in members.items():
            method = getattr(metrics, name)
            self.assertEqual(parameters(method), parameters(declared), name)
            self.assertFalse(inspect.iscoroutinefunction(method), name)


class RequestTests(MetricsTestCase):
    def test_counted_by_method_backend_tool_and_outcome(self) -> None:
        for _ in range(3):
            self.metrics.request_finished(finished())
        self.metrics.request_finished(finished(outcome="upstream_error"))
        self.metrics.request_finished(finished("tools/list", None, None, upstream_seconds=0.0))
        requests = "aigw_mcp_requests_total"
        call = {"method": "tools/call", "backend": "files", "tool": "read"}
        self.assertEqual(self.value(requests, **call, outcome="ok"), 3.0)
        self.assertEqual(self.value(requests, **call, outcome="upstream_error"), 1.0)
        listing = {"method": "tools/list", "backend": "", "tool": "", "outcome": "ok"}
        self.assertEqual(self.value(requests, **listing), 1.0)

    def test_histograms_of_the_whole_request_aigw_and_upstream(self) -> None:
        self.metrics.request_finished(finished(seconds=0.0300, upstream_seconds=0.0297))
        self.metrics.request_finished(finished(seconds=0.2, upstream_seconds=0.0))
        duration = "aigw_mcp_request_duration_seconds_bucket"
        self.assertEqual(self.value(duration, method="tools/call", le="0.025"), 0.0)
        self.assertEqual(self.value(duration, method="tools/call", le="0.05"), 1.0)
        self.assertEqual(self.value(duration, method="tools/call", le="+Inf"), 2.0)
        gateway = "aigw_mcp_gateway_seconds_bucket"
        self.assertEqual(self.value(gateway, le="0.0005"), 1.0)
        self.assertEqual(self.value(gateway, le="0.25"), 2.0)
        # Only the request that went upstream is timed upstream.
        upstream = "aigw_mcp_upstream_seconds"
        self.assertEqual(self.value(upstream + "_count", backend="files"), 1.0)
        self.assertAlmostEqual(self.value(upstream + "_sum", backend="files") or 0.0, 0.0297)

    def test_time_in_aigw_is_never_negative(self) -> None:
        self.metrics.request_finished(finished(seconds=0.01, upstream_seconds=0.02))
        self.assertEqual(self.value("aigw_mcp_gateway_seconds_sum"), 0.0)

    def test_made_up_method_backend_and_tool_become_other(self) -> None:
        self.metrics.request_finished(finished("tools/steal", "files", None))
        self.metrics.request_finished(finished(backend="elsewhere", name="read"))
        self.metrics.request_finished(finished(name="xevil"))
        requests = "aigw_mcp_requests_total"
        self.assertEqual(
            self.value(requests, method="other", backend="files", tool="", outcome="ok"), 1.0
        )
        self.assertEqual(
            self.value(requests, method="tools/call", backend="other", tool="other", outcome="ok"),
            1.0,
        )
        self.assertEqual(
            self.value(requests, method="tools/call", backend="files", tool="other", outcome="ok"),
            1.0,
        )

    def test_a_flood_of_tool_names_makes_a_bounded_number_of_series(self) -> None:
        metrics = GatewayMetrics(["files"], lambda backend, name: True, tools_per_backend=200)
        for i in range(10_000):
            metrics.request_finished(finished(name=f"tool-{i}"))
        samples = [
            sample
            for metric in metrics.registry.collect()
            for sample in metric.samples
            if sample.name == "aigw_mcp_requests_total"
        ]
        self.assertEqual(len(samples), 201)
        self.assertEqual(
            metrics.registry.get_sample_value(
                "aigw_mcp_requests_total",
                {"method": "tools/call", "backend": "files", "tool": "other", "outcome": "ok"},
            ),
            9_800.0,
        )
        # Nor do the caches of the hot path grow with the flood.
        self.assertEqual(len(metrics._request_series), 200)
        self.assertEqual(len(metrics._request_series_by_labels), 201)

    def test_never_a_principal_in_a_label(self) -> None:
        self.metrics.request_finished(finished())
        self.metrics.access_decided(AccessDecided(ALICE, "files", "read", False, "access.default"))
        exposition = generate_latest(self.metrics.registry)
        for secret in (b"alice", b"token-id", b"example.com"):
            self.assertNotIn(secret, exposition)


class EventTests(MetricsTestCase):
    def test_access_decisions_by_backend_decision_and_rule(self) -> None:
        for allowed, rule in ((True, "access.rules[2]"), (True, "access.rules[2]"), (False, "x")):
            self.metrics.access_decided(AccessDecided(ALICE, "files", "read", allowed, rule))
        self.metrics.access_decided(AccessDecided(ALICE, "made-up", None, False, "access.default"))
        decisions = "aigw_access_decisions_total"
        self.assertEqual(
            self.value(decisions, backend="files", decision="allowed", rule="access.rules[2]"), 2.0
        )
        self.assertEqual(self.value(decisions, backend="files", decision="denied", rule="x"), 1.0)
        self.assertEqual(
            self.value(decisions, backend="other", decision="denied", rule="access.default"), 1.0
        )

    def test_flagged_tools_by_backend_check_and_action(self) -> None:
        checks = ("hidden_block", "made_up_check")
        self.metrics.tool_flagged(ToolFlagged("files", "tool", "add", checks, (), "blocked"))
        self.metrics.tool_flagged(ToolFlagged("nope", "tool", "x", ("sidenote",), (), "warned"))
        flagged = "aigw_tools_flagged_total"
        self.assertEqual(
            self.value(flagged, backend="files", check="hidden_block", action="blocked"), 1.0
        )
        self.assertEqual(self.value(flagged, backend="files", check="other", action="blocked"), 1.0)
        self.assertEqual(
            self.value(flagged, backend="other", check="sidenote", action="warned"), 1.0
        )

    def test_authentication_refusals_by_status_and_reason(self) -> None:
        self.metrics.authentication_refused(AuthenticationRefused(401, "missing"))
        self.metrics.authentication_refused(AuthenticationRefused(401, "missing"))
        self.metrics.authentication_refused(AuthenticationRefused(503, "unavailable"))
        refusals = "aigw_auth_refusals_total"
        self.assertEqual(self.value(refusals, status="401", reason="missing"), 2.0)
        self.assertEqual(self.value(refusals, status="503", reason="unavailable"), 1.0)

    def test_refusal_reasons_are_capped(self) -> None:
        for i in range(100):
            self.metrics.authentication_refused(AuthenticationRefused(401, f"reason-{i}"))
        self.assertEqual(len(self.series("aigw_auth_refusals_total")), 33)

    def test_upstream_connections_by_backend_and_state_from_zero(self) -> None:
        connections = "aigw_upstream_connections_total"
        self.assertEqual(self.value(connections, backend="mail", state="failed"), 0.0)
        self.metrics.upstream_connection(UpstreamConnection("files", "opened"))
        self.metrics.upstream_connection(UpstreamConnection("files", "lost", "reset"))
        self.metrics.upstream_connection(UpstreamConnection("gone", "failed", "refused"))
        self.metrics.upstream_connection(UpstreamConnection("files", "replayed", "closed"))
        self.assertEqual(self.value(connections, backend="mail", state="replayed"), 0.0)
        self.assertEqual(self.value(connections, backend="files", state="replayed"), 1.0)
        self.assertEqual(self.value(connections, backend="files", state="opened"), 1.0)
        self.assertEqual(self.value(connections, backend="files", state="lost"), 1.0)
        self.assertEqual(self.value(connections, backend="other", state="failed"), 1.0)


class HTTPTests(MetricsTestCase):
    def test_requests_by_route_and_status(self) -> None:
        self.metrics.http_request_finished("mcp", 200)
        self.metrics.http_request_finished("mcp", 200)
        self.metrics.http_request_finished("healthz", 200)
        self.metrics.http_request_finished("mcp", 999)
        http = "aigw_http_requests_total"
        self.assertEqual(self.value(http, route="mcp", status="200"), 2.0)
        self.assertEqual(self.value(http, route="healthz", status="200"), 1.0)
        self.assertEqual(self.value(http, route="mcp", status="other"), 1.0)

    def test_the_observer_names_the_route_of_a_path(self) -> None:
        observe = self.metrics.http_observer("/mcp")
        observe(b"/mcp", 401)
        observe(b"/.well-known/oauth-protected-resource/mcp", 200)
        observe(b"/users/alice", 404)
        http = "aigw_http_requests_total"
        self.assertEqual(self.value(http, route="mcp", status="401"), 1.0)
        self.assertEqual(self.value(http, route="metadata", status="200"), 1.0)
        self.assertEqual(self.value(http, route="other", status="404"), 1.0)


class FetchAndReloadTests(MetricsTestCase):
    def test_jwks_and_introspection_outcomes_from_zero(self) -> None:
        for name in ("aigw_jwks_fetches_total", "aigw_introspection_requests_total"):
            self.assertEqual(self.value(name, outcome="failure"), 0.0)
        self.metrics.auth_server_fetched(AuthServerFetched("jwks", True))
        self.metrics.auth_server_fetched(AuthServerFetched("jwks", False))
        self.metrics.auth_server_fetched(AuthServerFetched("introspection", True))
        self.assertEqual(self.value("aigw_jwks_fetches_total", outcome="success"), 1.0)
        self.assertEqual(self.value("aigw_jwks_fetches_total", outcome="failure"), 1.0)
        self.assertEqual(self.value("aigw_introspection_requests_total", outcome="success"), 1.0)

    def test_config_reloads_and_the_time_of_the_last_success(self) -> None:
        last = "aigw_config_last_reload_success_timestamp_seconds"
        self.assertEqual(self.value(last), 1000.0)
        self.clock.advance(60.0)
        self.metrics.config_reloaded(True)
        self.clock.advance(60.0)
        self.metrics.config_reloaded(False)
        self.assertEqual(self.value("aigw_config_reloads_total", outcome="success"), 1.0)
        self.assertEqual(self.value("aigw_config_reloads_total", outcome="failure"), 1.0)
        self.assertEqual(self.value(last), 1060.0)


class GaugeTests(MetricsTestCase):
    def test_read_at_scrape_time(self) -> None:
        streams = [0]
        self.metrics.watch_open_streams(lambda: streams[0])
        self.metrics.watch_streaming_sessions(lambda: 5)
        self.metrics.watch_pooled_upstream_sessions(lambda: 2)
        self.assertEqual(self.value("aigw_open_streams"), 0.0)
        streams[0] = 7
        self.assertEqual(self.value("aigw_open_streams"), 7.0)
        self.assertEqual(self.value("aigw_streaming_sessions"), 5.0)
        self.assertEqual(self.value("aigw_pooled_upstream_sessions"), 2.0)

    def test_keys_age_from_the_last_successful_fetch_nan_before(self) -> None:
        age = "aigw_signing_keys_age_seconds"
        self.metrics.auth_server_fetched(AuthServerFetched("jwks", False))
        self.assertTrue(math.isnan(self.value(age) or 0.0))
        self.metrics.auth_server_fetched(AuthServerFetched("jwks", True))
        self.clock.advance(42.0)
        self.assertEqual(self.value(age), 42.0)
        self.metrics.auth_server_fetched(AuthServerFetched("jwks", False))
        self.metrics.auth_server_fetched(AuthServerFetched("introspection", True))
        self.clock.advance(8.0)
        self.assertEqual(self.value(age), 50.0)

    def test_a_failing_gauge_does_not_fail_the_scrape(self) -> None:
        self.metrics.watch_gauge("aigw_broken", "Broken.", lambda: 1 / 0)
        exposition = generate_latest(self.metrics.registry)
        self.assertIn(b"aigw_broken NaN", exposition)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_a_watched_counter_is_exposed_as_a_counter_read_at_each_scrape(self) -> None:
        count = [0]
        self.metrics.watch_counter("aigw_things_dropped", "Things dropped.", lambda: count[0])
        count[0] = 3
        exposition = generate_latest(self.metrics.registry)
        self.assertIn(b"# TYPE aigw_things_dropped_total counter", exposition)
        self.assertIn(b"aigw_things_dropped_total 3.0", exposition)
        count[0] = 5
        self.assertIn(b"aigw_things_dropped_total 5.0", generate_latest(self.metrics.registry))

    def test_a_failing_counter_does_not_fail_the_scrape(self) -> None:
        self.metrics.watch_counter("aigw_broken", "Broken.", lambda: 1 / 0)
        self.metrics.watch_open_streams(lambda: 4)
        exposition = generate_latest(self.metrics.registry)
        self.assertIn(b"aigw_broken_total NaN", exposition)
        self.assertIn(b"aigw_open_streams 4.0", exposition)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_a_name_is_watched_once(self) -> None:
        self.metrics.watch_open_streams(lambda: 1)
        with self.assertRaises(ValueError):
            self.metrics.watch_open_streams(lambda: 2)


class RegistryTests(SynchronousTestCase):
    def test_each_instance_has_its_own_registry(self) -> None:
        one, two = GatewayMetrics(["files"], no_x), GatewayMetrics(["files"], no_x)
        self.assertIsNot(one.registry, two.registry)
        one.request_finished(finished())
        name, labels = (
            "aigw_mcp_requests_total",
            {
                "method": "tools/call",
                "backend": "files",
                "tool": "read",
                "outcome": "ok",
            },
        )
        self.assertEqual(one.registry.get_sample_value(name, labels), 1.0)
        self.assertIsNone(two.registry.get_sample_value(name, labels))

    def test_a_given_registry_is_used(self) -> None:
        registry = CollectorRegistry()
        metrics = GatewayMetrics([], no_x, registry=registry)
        self.assertIs(metrics.registry, registry)
        self.assertIsNone(registry.get_sample_value("process_cpu_seconds_total"))

    def test_process_and_platform_metrics(self) -> None:
        registry = new_registry()
        if sys.platform.startswith("linux"):
            self.assertIsNotNone(registry.get_sample_value("process_cpu_seconds_total"))
            self.assertIsNotNone(registry.get_sample_value("process_resident_memory_bytes"))
        names = {sample.name for metric in registry.collect() for sample in metric.samples}
        self.assertIn("python_info", names)
        self.assertIn("python_gc_collections_total", names)

    def test_build_info(self) -> None:
        metrics = GatewayMetrics([], no_x)
        value = metrics.registry.get_sample_value("aigw_build_info", {"version": __version__})
        self.assertEqual(value, 1.0)
