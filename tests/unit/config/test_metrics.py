"""The ``metrics`` section: on by default, ``off`` as a word, a listener of its own."""

from __future__ import annotations

from aigw.config import MetricsConfig, parse_config
from tests.unit.config.helpers import MINIMAL, ConfigTestCase, example_block


class MetricsKeysTests(ConfigTestCase):
    def test_on_by_default_on_the_local_port_9464(self) -> None:
        metrics = parse_config(MINIMAL, env={}).metrics
        self.assertEqual(metrics, MetricsConfig(True, "tcp:9464:interface=127.0.0.1"))

    def test_off_true_and_false_as_words(self) -> None:
        for word, enabled in (("off", False), ("false", False), ("no", False), ("on", True)):
            metrics = parse_config(MINIMAL + f"metrics: {word}\n", env={}).metrics
            self.assertEqual(metrics, MetricsConfig(enabled=enabled), word)

    def test_off_from_the_environment(self) -> None:
        text = MINIMAL + "metrics: ${AIGW_METRICS:-on}\n"
        self.assertFalse(parse_config(text, env={"AIGW_METRICS": "off"}).metrics.enabled)
        self.assertTrue(parse_config(text, env={}).metrics.enabled)

    def test_a_port_per_process_of_aigw_at_service(self) -> None:
        """etc/systemd/aigw@.service sets AIGW_INSTANCE=%i for this line of its config."""
        text = MINIMAL + 'metrics: {listen: "tcp:946${AIGW_INSTANCE}:interface=127.0.0.1"}\n'
        metrics = parse_config(text, env={"AIGW_INSTANCE": "2"}).metrics
        self.assertEqual(metrics.listen, "tcp:9462:interface=127.0.0.1")

    def test_a_mapping_with_enabled_and_listen(self) -> None:
        text = MINIMAL + "metrics:\n  enabled: false\n  listen: tcp:0:interface=127.0.0.1\n"
        metrics = parse_config(text, env={}).metrics
        self.assertEqual(metrics, MetricsConfig(False, "tcp:0:interface=127.0.0.1"))

    def test_an_empty_mapping_holds_the_defaults(self) -> None:
        self.assertEqual(parse_config(MINIMAL + "metrics: {}\n", env={}).metrics, MetricsConfig())

    def test_a_bad_endpoint_names_its_key_path_and_line(self) -> None:
        text = MINIMAL + "metrics:\n  listen: tcp:notaport\n"
        self.assertProblem(text, "metrics.listen", 9, "invalid endpoint 'tcp:notaport'")

    def test_neither_a_mapping_nor_a_boolean(self) -> None:
        problem = self.assertProblem(MINIMAL + "metrics: disabled\n", "metrics", 8)
        self.assertIn("expected a mapping, or off, got a string 'disabled'", problem.message)
        self.assertProblem(MINIMAL + "metrics: [a]\n", "metrics", 8, "got a list")

    def test_unknown_key_suggests_the_close_one(self) -> None:
        text = MINIMAL + "metrics:\n  listn: tcp:9464\n"
        self.assertProblem(text, "metrics.listn", 9, "did you mean 'listen'?")

    def test_the_commented_block_of_the_example_states_the_defaults(self) -> None:
        text = MINIMAL + example_block("# metrics:")
        self.assertEqual(parse_config(text, env={}).metrics, MetricsConfig())
