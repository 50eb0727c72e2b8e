"""The ``audit`` section: defaults, the file aigw appends to, the one format."""

from __future__ import annotations

from aigw.config import AuditConfig, load_config, parse_config
from tests.unit.config.helpers import MINIMAL, ConfigTestCase


class AuditSectionTests(ConfigTestCase):
    def test_on_by_default_without_a_file_or_arguments(self) -> None:
        self.assertEqual(
            parse_config(MINIMAL, env={}).audit,
            AuditConfig(
                enabled=True,
                file=None,
                format="json",
                include_arguments=False,
                on_write_error="log",
            ),
        )

    def test_every_key(self) -> None:
        directory = self.directory().resolve()
        path = directory / "aigw.yaml"
        path.write_text(
            MINIMAL
            + "audit:\n  enabled: false\n  file: audit.log\n  format: json\n"
            + "  include_arguments: true\n  on_write_error: refuse\n"
        )
        audit = load_config(str(path), env={}).audit
        self.assertEqual(
            audit,
            AuditConfig(
                False,
                str(directory / "audit.log"),
                "json",
                include_arguments=True,
                on_write_error="refuse",
            ),
        )

    def test_only_json(self) -> None:
        text = MINIMAL + "audit:\n  format: text\n"
        self.assertProblem(text, "audit.format", 9, "'json'")

    def test_the_file_directory_must_exist(self) -> None:
        missing = self.directory().resolve() / "nowhere"
        text = MINIMAL + f"audit:\n  enabled: true\n  file: {missing}/audit.log\n"
        self.assertProblem(text, "audit.file", 10, f"directory {missing} does not exist")

    def test_the_file_is_not_a_directory(self) -> None:
        directory = self.directory()
        self.assertProblem(
            MINIMAL + f"audit: {{file: {directory}}}\n", "audit.file", 8, "directory"
        )

    def test_a_mistyped_key_is_named(self) -> None:
        text = MINIMAL + "audit:\n  include_argument: true\n"
        self.assertProblem(text, "audit.include_argument", 9, "did you mean 'include_arguments'")

    def test_a_boolean_is_a_boolean(self) -> None:
        self.assertProblem(MINIMAL + "audit: {enabled: maybe}\n", "audit.enabled", 8, "boolean")

    def test_on_write_error_is_log_or_refuse(self) -> None:
        text = MINIMAL + "audit:\n  file: audit.log\n  on_write_error: ignore\n"
        self.assertProblem(text, "audit.on_write_error", 10, "'log'")
