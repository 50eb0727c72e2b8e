"""Secrets at rest (issue 16 item 6) as the daemon starts: a warning, or exit 78."""

from __future__ import annotations

import os
import subprocess

from twisted.trial.unittest import TestCase

from tests.e2e.aigw import write_session_key
from tests.process.helpers import BIN, EX_CONFIG, free_port, stop, wait_for_health, write_config


class SecretsAtRestTests(TestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.key = write_session_key(self.directory)
        os.chmod(self.key, 0o644)  # what these tests are about: a key others may read

    def test_aigw_run_warns_of_a_session_key_others_may_read(self) -> None:
        """`aigw run` with `sessions.secret_file` mode 0644: it serves, and logs a warning
        naming the file, the key path and its line."""
        port = free_port()
        config = write_config(self.directory, port, f"sessions:\n  secret_file: {self.key}\n")
        process = subprocess.Popen(
            [str(BIN / "aigw"), "run", config],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        try:
            wait_for_health(port, process)
        finally:
            code = stop(process)
        output = process.stdout.read().decode() if process.stdout else ""
        self.assertEqual(code, 0, output)
        self.assertIn(
            f"line 10: sessions.secret_file: {self.key} is readable by its group and others "
            "(mode 0644)",
            output,
        )
        self.assertNotIn("Traceback", output)

    def test_strict_file_modes_exits_78(self) -> None:
        """twistd and `aigw check` with `strict_file_modes: true` and that key: exit 78."""
        port = free_port()
        extra = f"strict_file_modes: true\nsessions:\n  secret_file: {self.key}\n"
        config = write_config(self.directory, port, extra)
        for argv in (
            [str(BIN / "aigw"), "check", config],
            [str(BIN / "twistd"), "-n", "--pidfile=", "aigw", "--config", config],
        ):
            result = subprocess.run(argv, capture_output=True, timeout=60, cwd=self.directory)
            err = result.stderr.decode()
            self.assertEqual(result.returncode, EX_CONFIG, err)
            self.assertIn("line 11: sessions.secret_file:", err)
            self.assertIn("chmod 600", err)
            self.assertNotIn("Traceback", err)
