"""The access policy: first matching rule decides, else the default."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.policy import AccessRules, unmet
from aigw.config import AccessConfig, AccessRule
from aigw.principal import Principal


def who(
    sub: str = "alice", client: str | None = "cli", scopes: str = "", **claims: Any
) -> Principal:
    return Principal("iss", sub, client, frozenset(scopes.split()), claims, None, None)


class PolicyTests(SynchronousTestCase):
    def test_default(self) -> None:
        self.assertTrue(AccessRules(AccessConfig()).decide(who(), "files", "read").allowed)
        self.assertFalse(AccessRules(AccessConfig(default="deny")).decide(who(), "files").allowed)

    def test_first_match_decides(self) -> None:
        policy = AccessRules(
            AccessConfig(
                default="allow",
                rules=(
                    AccessRule(effect="allow", subjects=("alice",), tools=("delete_*",)),
                    AccessRule(effect="deny", tools=("delete_*",)),
                ),
            )
        )
        self.assertTrue(policy.decide(who("alice"), "files", "delete_file").allowed)
        self.assertFalse(policy.decide(who("bob"), "files", "delete_file").allowed)
        self.assertTrue(policy.decide(who("bob"), "files", "read_file").allowed)

    def test_all_conditions_must_hold(self) -> None:
        rule = AccessRule(effect="allow", subjects=("alice",), clients=("cli",), scopes=("a", "b"))
        policy = AccessRules(AccessConfig(default="deny", rules=(rule,)))
        self.assertTrue(policy.decide(who(scopes="a b c"), "x").allowed)
        self.assertFalse(policy.decide(who(scopes="a"), "x").allowed)
        self.assertFalse(policy.decide(who(client="other", scopes="a b"), "x").allowed)
        self.assertFalse(policy.decide(who(client=None, scopes="a b"), "x").allowed)

    def test_claims_equal_or_contained(self) -> None:
        rule = AccessRule(effect="allow", claims={"groups": "admins", "tenant": "t1"})
        policy = AccessRules(AccessConfig(default="deny", rules=(rule,)))
        self.assertTrue(policy.decide(who(groups=["dev", "admins"], tenant="t1"), "x").allowed)
        self.assertFalse(policy.decide(who(groups=["dev"], tenant="t1"), "x").allowed)
        self.assertFalse(policy.decide(who(groups="admins", tenant="t2"), "x").allowed)
        self.assertFalse(policy.decide(who(tenant="t1"), "x").allowed)

    def test_backend_and_tool_globs(self) -> None:
        rule = AccessRule(effect="allow", backends=("files*",), tools=("read_*", "list"))
        policy = AccessRules(AccessConfig(default="deny", rules=(rule,)))
        self.assertTrue(policy.decide(who(), "files-eu", "read_x").allowed)
        self.assertTrue(policy.decide(who(), "files", "list").allowed)
        self.assertFalse(policy.decide(who(), "files", "write_x").allowed)
        self.assertFalse(policy.decide(who(), "db", "read_x").allowed)
        self.assertFalse(policy.decide(who(), "files", None).allowed)

    def test_globs_are_case_sensitive(self) -> None:
        rule = AccessRule(effect="deny", tools=("delete*",))
        policy = AccessRules(AccessConfig(rules=(rule,)))
        self.assertFalse(policy.decide(who(), "files", "delete").allowed)
        self.assertTrue(policy.decide(who(), "files", "Delete").allowed)


class DecisionTests(SynchronousTestCase):
    """``decide`` names the rule that decided, as a config key path, for the audit trail."""

    RULES = (
        AccessRule(effect="allow", subjects=("alice",), tools=("read_*",)),
        AccessRule(effect="deny", backends=("mail",)),
        AccessRule(effect="allow", backends=("mail",)),
    )

    def test_the_first_matching_rule_decides(self) -> None:
        policy = AccessRules(AccessConfig(default="allow", rules=self.RULES))
        decision = policy.decide(who("alice"), "mail", "send")
        self.assertEqual((decision.allowed, decision.rule), (False, "access.rules[1]"))
        decision = policy.decide(who("alice"), "mail", "read_inbox")
        self.assertEqual((decision.allowed, decision.rule), (True, "access.rules[0]"))

    def test_no_rule_matching_the_default_decides(self) -> None:
        policy = AccessRules(AccessConfig(default="deny", rules=self.RULES))
        decision = policy.decide(who("bob"), "files", "read_x")
        self.assertEqual((decision.allowed, decision.rule), (False, "access.default"))

    def test_a_decision_is_true_when_allowed(self) -> None:
        policy = AccessRules(AccessConfig())
        self.assertTrue(policy.decide(who(), "files"))
        self.assertFalse(AccessRules(AccessConfig(default="deny")).decide(who(), "files"))


def deny_but(*rules: AccessRule) -> AccessRules:
    return AccessRules(AccessConfig(default="deny", rules=rules))


class DottedClaimTests(SynchronousTestCase):
    """``claims`` keys are claim names, or dotted paths into nested claims."""

    def test_keycloak_realm_roles_by_dotted_path(self) -> None:
        policy = deny_but(AccessRule(effect="allow", claims={"realm_access.roles": "admin"}))
        admin = who(realm_access={"roles": ["offline_access", "admin"]})
        self.assertTrue(policy.decide(admin, "x", "t").allowed)
        self.assertFalse(policy.decide(who(realm_access={"roles": ["user"]}), "x", "t").allowed)
        self.assertFalse(policy.decide(who(realm_access="admin"), "x", "t").allowed)
        self.assertFalse(policy.decide(who(), "x", "t").allowed)

    def test_deeper_paths_and_plain_values(self) -> None:
        rule = AccessRule(
            effect="allow", claims={"resource_access.aigw.roles": "ops", "org.id": "7"}
        )
        policy = deny_but(rule)
        claims = {"resource_access": {"aigw": {"roles": ["ops"]}}, "org": {"id": "7"}}
        self.assertTrue(policy.decide(who(**claims), "x").allowed)
        self.assertFalse(policy.decide(who(**{**claims, "org": {"id": "8"}}), "x").allowed)

    def test_a_claim_named_with_dots_wins_over_the_path(self) -> None:
        policy = deny_but(AccessRule(effect="allow", claims={"https://ex.com/roles": "a"}))
        self.assertTrue(policy.decide(who(**{"https://ex.com/roles": ["a"]}), "x").allowed)
        rule = AccessRule(effect="allow", claims={"a.b": "whole"})
        named = who(**{"a.b": "whole", "a": {"b": "nested"}})
        self.assertTrue(deny_but(rule).decide(named, "x").allowed)


class MethodTests(SynchronousTestCase):
    """``methods`` globs match the MCP method the decision is for."""

    def test_list_but_not_call(self) -> None:
        policy = AccessRules(
            AccessConfig(rules=(AccessRule(effect="deny", methods=("tools/call",)),))
        )
        self.assertTrue(policy.decide(who(), "files", "rm", method="tools/list").allowed)
        decision = policy.decide(who(), "files", "rm", method="tools/call")
        self.assertEqual((decision.allowed, decision.rule), (False, "access.rules[0]"))

    def test_globs_and_no_method(self) -> None:
        policy = deny_but(AccessRule(effect="allow", methods=("resources/*",)))
        self.assertTrue(
            policy.decide(who(), "d", "u", kind="resource", method="resources/read").allowed
        )
        self.assertFalse(policy.decide(who(), "d", "t", method="tools/call").allowed)
        self.assertFalse(policy.decide(who(), "d", "t").allowed)

    def test_rules_without_methods_decide_every_method(self) -> None:
        policy = AccessRules(AccessConfig(rules=(AccessRule(effect="deny", tools=("rm",)),)))
        for method in ("tools/list", "tools/call", None):
            self.assertFalse(policy.decide(who(), "files", "rm", method=method).allowed)


class ItemKindTests(SynchronousTestCase):
    """``tools``, ``prompts`` and ``resources`` globs each match their own kind of item."""

    RULES = (
        AccessRule(effect="allow", prompts=("summar*",)),
        AccessRule(effect="allow", resources=("file:///docs/*",)),
        AccessRule(effect="allow", tools=("read",), prompts=("review",)),
    )

    def test_prompts(self) -> None:
        policy = deny_but(*self.RULES)
        self.assertEqual(
            policy.decide(who(), "b", "summary", kind="prompt").rule, "access.rules[0]"
        )
        self.assertTrue(policy.decide(who(), "b", "review", kind="prompt").allowed)
        self.assertFalse(policy.decide(who(), "b", "secret", kind="prompt").allowed)
        self.assertFalse(policy.decide(who(), "b", "summary", kind="tool").allowed)

    def test_resources_by_upstream_uri(self) -> None:
        policy = deny_but(*self.RULES)
        self.assertTrue(policy.decide(who(), "b", "file:///docs/a.md", kind="resource").allowed)
        self.assertFalse(policy.decide(who(), "b", "file:///etc/passwd", kind="resource").allowed)
        self.assertFalse(
            policy.decide(who(), "b", "aigw:b/file:///docs/a.md", kind="resource").allowed
        )

    def test_a_rule_of_several_kinds_matches_either(self) -> None:
        policy = deny_but(*self.RULES)
        self.assertEqual(policy.decide(who(), "b", "read").rule, "access.rules[2]")
        self.assertFalse(policy.decide(who(), "b", "write").allowed)
        self.assertFalse(policy.decide(who(), "b", None).allowed)

    def test_rules_naming_no_kind_match_every_item(self) -> None:
        policy = deny_but(AccessRule(effect="allow", backends=("b",)))
        for kind in ("tool", "prompt", "resource"):
            self.assertTrue(policy.decide(who(), "b", "anything", kind=kind).allowed)  # type: ignore[arg-type]


class UnmetTests(SynchronousTestCase):
    """``unmet`` says which condition failed, for ``aigw access explain``."""

    def test_each_condition_in_words(self) -> None:
        cases = [
            (AccessRule(effect="allow", subjects=("bob",)), "subjects: sub 'alice'"),
            (AccessRule(effect="allow", clients=("web",)), "clients: client 'cli'"),
            (AccessRule(effect="allow", scopes=("a", "b")), "scopes: a b not held"),
            (
                AccessRule(effect="allow", claims={"realm_access.roles": "admin"}),
                "claims: realm_access.roles is absent",
            ),
            (AccessRule(effect="allow", backends=("db",)), "backends: 'files' matches none"),
            (AccessRule(effect="allow", methods=("tools/list",)), "methods: 'tools/call'"),
            (AccessRule(effect="allow", tools=("ls",)), "tools: 'rm' matches none of ['ls']"),
            (AccessRule(effect="allow", prompts=("p",)), "prompts: the request names a tool"),
        ]
        for rule, said in cases:
            reason = unmet(rule, who(), "files", "rm", "tool", "tools/call")
            self.assertIsNotNone(reason, rule)
            self.assertIn(said, reason or "")
        self.assertIsNone(unmet(AccessRule(effect="deny"), who(), "files", "rm"))
