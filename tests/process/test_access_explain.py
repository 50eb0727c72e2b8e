"""``aigw access explain``, the real command: its output and exit statuses."""

from __future__ import annotations

import json
import os

from twisted.trial.unittest import TestCase

from tests.process.helpers import EX_CONFIG, run_aigw
from tests.unit.auth.helpers import EXPLAIN_CONFIG


class AccessExplainTests(TestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "w") as file:
            file.write(text)
        return path

    def explain(self, config: str, claims: dict[str, object], *more: str) -> tuple[int, str, str]:
        path = self.write("claims.json", json.dumps(claims))
        result = run_aigw("access", "explain", config, "--claims", path, *more)
        return result.returncode, result.stdout.decode(), result.stderr.decode()

    def test_allowed_denied_and_config_problems(self) -> None:
        config = self.write("aigw.yaml", EXPLAIN_CONFIG)
        admin = {"sub": "alice", "realm_access": {"roles": ["mcp-admin"]}}
        status, out, _ = self.explain(config, admin, "--tool", "prod__deploy")
        self.assertEqual(status, 0, out)
        self.assertTrue(out.endswith("allowed by access.rules[0]\n"), out)
        status, out, _ = self.explain(config, {"sub": "bob"}, "--tool", "prod__deploy")
        self.assertEqual(status, 1, out)
        self.assertIn("access.rules[1] deny: matches (backends, methods)\n", out)
        self.assertTrue(out.endswith("denied by access.rules[1]\n"), out)
        broken = self.write("broken.yaml", EXPLAIN_CONFIG.replace("tools/call", "tool/call"))
        status, _, err = self.explain(broken, {"sub": "bob"}, "--tool", "prod__deploy")
        self.assertEqual(status, EX_CONFIG, err)
        self.assertIn("access.rules[1].methods[0]", err)
