"""metrics.labels: every label value bounded, whatever the requests say."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.metrics.labels import OTHER, HTTPRoutes, LabelValues, RequestLabels, status_label


def no_x(backend: str, name: str) -> bool:
    """The tool selector of the tests: any tool not starting with x."""
    return not name.startswith("x")


class LabelValuesTests(SynchronousTestCase):
    def test_known_values_only(self) -> None:
        values = LabelValues({"a", "b"})
        self.assertEqual([values("a"), values("b"), values("c")], ["a", "b", OTHER])

    def test_learnt_up_to_the_limit_when_admitted(self) -> None:
        values = LabelValues(limit=2, admit=lambda value: value != "no")
        self.assertEqual(values("no"), OTHER)
        self.assertEqual([values("a"), values("b"), values("c")], ["a", "b", OTHER])
        self.assertEqual(values("a"), "a")

    def test_a_learnt_value_is_utf8(self) -> None:
        """Lone surrogates (valid JSON text) escaped: the exposition's encoding raised."""
        values = LabelValues(limit=2, admit=lambda value: True)
        self.assertEqual([values("ad\ud800d"), values("ad\ud800d")], ["ad\\ud800d"] * 2)
        self.assertEqual(values("caf\u00e9"), "caf\u00e9")


class RequestLabelsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.labels = RequestLabels(["files", "mail"], no_x, tools_per_backend=3)

    def test_a_configured_tool_call(self) -> None:
        self.assertEqual(
            self.labels("tools/call", "files", "read", "ok"), ("tools/call", "files", "read", "ok")
        )

    def test_made_up_method_backend_tool_and_outcome_are_other(self) -> None:
        self.assertEqual(self.labels("tools/hack", "files", None, "ok")[0], OTHER)
        self.assertEqual(self.labels("tools/call", "nope", "read", "ok")[1:3], (OTHER, OTHER))
        self.assertEqual(self.labels("tools/call", "files", "xrm", "ok")[2], OTHER)
        self.assertEqual(self.labels("ping", None, None, "weird")[3], OTHER)

    def test_no_backend_and_no_tool_are_empty(self) -> None:
        self.assertEqual(self.labels("tools/list", None, None, "ok"), ("tools/list", "", "", "ok"))

    def test_names_of_other_methods_are_never_labels(self) -> None:
        labels = self.labels("resources/read", "files", "file:///etc/passwd", "ok")
        self.assertEqual(labels, ("resources/read", "files", "", "ok"))

    def test_tools_per_backend_are_capped(self) -> None:
        tools = [self.labels("tools/call", "files", f"t{i}", "ok")[2] for i in range(5)]
        self.assertEqual(tools, ["t0", "t1", "t2", OTHER, OTHER])
        self.assertEqual(self.labels("tools/call", "mail", "t9", "ok")[2], "t9")

    def test_a_failing_predicate_admits_nothing_and_is_logged(self) -> None:
        def broken(backend: str, name: str) -> bool:
            raise RuntimeError("selector bug")

        labels = RequestLabels(["files"], broken)
        self.assertEqual(labels("tools/call", "files", "read", "ok")[2], OTHER)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class HTTPRoutesTests(SynchronousTestCase):
    def test_routes(self) -> None:
        routes = HTTPRoutes("/mcp")
        self.assertEqual(routes(b"/mcp"), "mcp")
        self.assertEqual(routes(b"/healthz"), "healthz")
        self.assertEqual(routes(b"/readyz"), "readyz")
        self.assertEqual(routes(b"/.well-known/oauth-protected-resource/mcp"), "metadata")
        self.assertEqual(routes(b"/mcp/.well-known/openid-configuration"), "metadata")
        self.assertEqual(routes(b"/mcpx"), "other")
        self.assertEqual(routes(b"/user/alice/token"), "other")

    def test_status_labels(self) -> None:
        self.assertEqual([status_label(200), status_label(599)], ["200", "599"])
        self.assertEqual([status_label(99), status_label(600), status_label(-1)], [OTHER] * 3)
