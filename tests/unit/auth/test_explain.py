"""``aigw access explain``: each check said in order, the decision the gateway would make."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.explain import BadQuestion, explain, read_claims
from aigw.cli import main
from aigw.config import parse_config
from aigw.principal import Principal
from tests.unit.auth.helpers import EXPLAIN_CONFIG


def who(**claims: Any) -> Principal:
    return Principal("iss", "alice", "cli", frozenset({"vault"}), claims, None, None)


class ExplainTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.config = parse_config(EXPLAIN_CONFIG, env={})

    def test_every_rule_is_said_then_the_decision(self) -> None:
        said = explain(self.config, who(), "tool", "prod__deploy", "tools/call")
        self.assertEqual((said.allowed, said.rule), (False, "access.rules[1]"))
        self.assertEqual(
            said.lines[2:],
            (
                "access.rules[0] allow: no match (claims: realm_access.roles is absent, "
                "neither 'mcp-admin' nor an array holding it)",
                "access.rules[1] deny: matches (backends, methods)",
                "access.rules[2] allow: no match (prompts, resources: the request names a tool)",
                "denied by access.rules[1]",
            ),
        )

    def test_an_array_claim_by_dotted_path_allows(self) -> None:
        admin = who(realm_access={"roles": ["user", "mcp-admin"]})
        said = explain(self.config, admin, "tool", "prod__deploy", "tools/call")
        self.assertEqual((said.allowed, said.rule), (True, "access.rules[0]"))
        self.assertIn("but an earlier rule decided", said.lines[3])

    def test_the_default_decides_when_nothing_matches(self) -> None:
        said = explain(self.config, who(), "tool", "prod__deploy", "tools/list")
        self.assertEqual(said.lines[-2:], ("access.default: deny", "denied by access.default"))

    def test_prompts_and_resources(self) -> None:
        said = explain(self.config, who(), "prompt", "vault__summary", "prompts/get")
        self.assertEqual((said.allowed, said.rule), (True, "access.rules[2]"))
        self.assertIn("backends[1].required_scopes: held", said.lines)
        said = explain(self.config, who(), "resource", "aigw:prod/file:///etc/x", "resources/read")
        self.assertEqual(said.rule, "access.default")

    def test_selector_and_required_scopes_decide_first(self) -> None:
        said = explain(self.config, who(), "tool", "prod__rm", "tools/call")
        self.assertEqual((said.allowed, said.rule), (False, "backends[0].tools"))
        lacking = Principal("iss", "bob", None, frozenset(), {}, None, None)
        said = explain(self.config, lacking, "tool", "vault__get", "tools/call")
        self.assertEqual(said.rule, "backends[1].required_scopes")

    def test_names_that_name_nothing(self) -> None:
        for kind, name in (("tool", "deploy"), ("tool", "nope__x"), ("resource", "file:///x")):
            with self.assertRaises(BadQuestion):
                explain(self.config, who(), kind, name, "tools/call")  # type: ignore[arg-type]


class CommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.config = self.write("aigw.yaml", EXPLAIN_CONFIG)

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "w") as file:
            file.write(text)
        return path

    def claims(self, **claims: Any) -> str:
        return self.write("claims.json", json.dumps({"iss": "https://as.example", **claims}))

    def test_exit_statuses(self) -> None:
        admin = self.claims(sub="alice", realm_access={"roles": ["mcp-admin"]})
        args = ["access", "explain", self.config, "--claims", admin, "--tool", "prod__deploy"]
        self.assertEqual(main(args), 0)
        user = self.claims(sub="bob")
        args = ["access", "explain", self.config, "--claims", user, "--tool", "prod__deploy"]
        self.assertEqual(main(args), 1)
        self.assertEqual(main([*args, "--method", "tools/list"]), 1)
        broken = self.write("broken.yaml", EXPLAIN_CONFIG.replace("effect: deny", "effect: dney"))
        self.assertEqual(
            main(["access", "explain", broken, "--claims", user, "--tool", "a__b"]), 78
        )
        self.assertEqual(
            main(["access", "explain", self.config, "--claims", user, "--tool", "b"]), 2
        )

    def test_claims_build_the_principal_as_a_token_would(self) -> None:
        path = self.claims(sub="alice", azp="web", scope="a b", realm_access={"roles": ["x"]})
        principal = read_claims(path)
        self.assertEqual(
            (principal.issuer, principal.subject, principal.client_id, principal.scopes),
            ("https://as.example", "alice", "web", frozenset({"a", "b"})),
        )
        self.assertEqual(principal.claims["realm_access"], {"roles": ["x"]})
        for text in ("[1]", "{", '{"iss": "x"}'):
            with self.assertRaises(BadQuestion):
                read_claims(self.write("bad.json", text))
