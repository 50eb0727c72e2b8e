"""The ``tracing`` section: absent means off; an OTLP/HTTP endpoint turns it on."""

from __future__ import annotations

from aigw.config import TracingConfig, parse_config
from aigw.reload import restart_keys
from tests.unit.config.helpers import EXAMPLE, MINIMAL, ConfigTestCase

ENDPOINT = "http://127.0.0.1:4318/v1/traces"


class TracingKeysTests(ConfigTestCase):
    def test_absent_is_off(self) -> None:
        self.assertIsNone(parse_config(MINIMAL, env={}).tracing)

    def test_an_endpoint_turns_it_on_with_the_defaults(self) -> None:
        tracing = parse_config(MINIMAL + f"tracing: {{otlp_endpoint: {ENDPOINT}}}\n", env={})
        self.assertEqual(tracing.tracing, TracingConfig(ENDPOINT, "aigw", 1.0, 10.0))

    def test_every_key(self) -> None:
        text = MINIMAL + (
            f"tracing:\n  otlp_endpoint: {ENDPOINT}\n  service_name: gw-eu\n"
            "  sample_ratio: 0.25\n  export_timeout: 2s\n"
        )
        self.assertEqual(
            parse_config(text, env={}).tracing, TracingConfig(ENDPOINT, "gw-eu", 0.25, 2.0)
        )

    def test_the_endpoint_is_required(self) -> None:
        self.assertProblem(MINIMAL + "tracing: {service_name: x}\n", "tracing.otlp_endpoint", 8)

    def test_a_ratio_outside_0_to_1_names_its_key_and_line(self) -> None:
        text = MINIMAL + f"tracing:\n  otlp_endpoint: {ENDPOINT}\n  sample_ratio: 1.5\n"
        self.assertProblem(text, "tracing.sample_ratio", 10, "from 0 to 1, got 1.5")
        text = MINIMAL + f"tracing:\n  otlp_endpoint: {ENDPOINT}\n  sample_ratio: all\n"
        self.assertProblem(text, "tracing.sample_ratio", 10, "a number from 0 to 1")

    def test_a_reload_cannot_change_it(self) -> None:
        """The tracer and its exporter thread are built at start (reload.py)."""
        before = parse_config(MINIMAL, env={})
        after = parse_config(MINIMAL + f"tracing: {{otlp_endpoint: {ENDPOINT}}}\n", env={})
        self.assertEqual(restart_keys(before, after), ["tracing"])

    def test_the_example_documents_the_keys(self) -> None:
        text = EXAMPLE.read_text()
        for key in (
            "tracing:",
            "otlp_endpoint:",
            "service_name:",
            "sample_ratio:",
            "export_timeout:",
        ):
            self.assertIn(key, text)
