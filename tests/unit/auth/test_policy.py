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
        self.assertTrue(AccessRules(AccessConfig()).allows(who(), "files", "read"))
        self.assertFalse(AccessRules(AccessConfig(default="deny")).allows(who(), "files"))

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
        self.assertTrue(policy.allows(who("alice"), "files", "delete_file"))
        self.assertFalse(policy.allows(who("bob"), "files", "delete_file"))
        self.assertTrue(policy.allows(who("bob"), "files", "read_file"))

    def test_all_conditions_must_hold(self) -> None:
        rule = AccessRule(effect="allow", subjects=("alice",), clients=("cli",), scopes=("a", "b"))
        policy = AccessRules(AccessConfig(default="deny", rules=(rule,)))
        self.assertTrue(policy.allows(who(scopes="a b c"), "x"))
        self.assertFalse(policy.allows(who(scopes="a"), "x"))
        self.assertFalse(policy.allows(who(client="other", scopes="a b"), "x"))
        self.assertFalse(policy.allows(who(client=None, scopes="a b"), "x"))

    def test_claims_equal_or_contained(self) -> None:
        rule = AccessRule(effect="allow", claims={"groups": "admins", "tenant": "t1"})
        policy = AccessRules(AccessConfig(default="deny", rules=(rule,)))
        self.assertTrue(policy.allows(who(groups=["dev", "admins"], tenant="t1"), "x"))
        self.assertFalse(policy.allows(who(groups=["dev"], tenant="t1"), "x"))
        self.assertFalse(policy.allows(who(groups="admins", tenant="t2"), "x"))
        self.assertFalse(policy.allows(who(tenant="t1"), "x"))

    def test_backend_and_tool_globs(self) -> None:
        rule = AccessRule(effect="allow", backends=("files*",), tools=("read_*", "list"))
        policy = AccessRules(AccessConfig(default="deny", rules=(rule,)))
        self.assertTrue(policy.allows(who(), "files-eu", "read_x"))
        self.assertTrue(policy.allows(who(), "files", "list"))
        self.assertFalse(policy.allows(who(), "files", "write_x"))
        self.assertFalse(policy.allows(who(), "db", "read_x"))
        self.assertFalse(policy.allows(who(), "files", None))

    def test_globs_are_case_sensitive(self) -> None:
        rule = AccessRule(effect="deny", tools=("delete*",))
        policy = AccessRules(AccessConfig(rules=(rule,)))
        self.assertFalse(policy.allows(who(), "files", "delete"))
        self.assertTrue(policy.allows(who(), "files", "Delete"))


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
        self.assertTrue(policy.allows(admin, "x", "t"))
        self.assertFalse(policy.allows(who(realm_access={"roles": ["user"]}), "x", "t"))
        self.assertFalse(policy.allows(who(realm_access="admin"), "x", "t"))
        self.assertFalse(policy.allows(who(), "x", "t"))

    def test_deeper_paths_and_plain_values(self) -> None:
        rule = AccessRule(
            effect="allow", claims={"resource_access.aigw.roles": "ops", "org.id": "7"}
        )
        policy = deny_but(rule)
        claims = {"resource_access": {"aigw": {"roles": ["ops"]}}, "org": {"id": "7"}}
        self.assertTrue(policy.allows(who(**claims), "x"))
        self.assertFalse(policy.allows(who(**{**claims, "org": {"id": "8"}}), "x"))

    def test_a_claim_named_with_dots_wins_over_the_path(self) -> None:
        policy = deny_but(AccessRule(effect="allow", claims={"https://ex.com/roles": "a"}))
        self.assertTrue(policy.allows(who(**{"https://ex.com/roles": ["a"]}), "x"))
        rule = AccessRule(effect="allow", claims={"a.b": "whole"})
        named = who(**{"a.b": "whole", "a": {"b": "nested"}})
        self.assertTrue(deny_but(rule).allows(named, "x"))


class MethodTests(SynchronousTestCase):
    """``methods`` globs match the MCP method the decision is for."""

    def test_list_but_not_call(self) -> None:
        policy = AccessRules(
            AccessConfig(rules=(AccessRule(effect="deny", methods=("tools/call",)),))
        )
        self.assertTrue(policy.allows(who(), "files", "rm", method="tools/list"))
        decision = policy.decide(who(), "files", "rm", method="tools/call")
        self.assertEqual((decision.allowed, decision.rule), (False, "access.rules[0]"))

    def test_globs_and_no_method(self) -> None:
        policy = deny_but(AccessRule(effect="allow", methods=("resources/*",)))
        self.assertTrue(policy.allows(who(), "d", "u", kind="resource", method="resources/read"))
        self.assertFalse(policy.allows(who(), "d", "t", method="tools/call"))
        self.assertFalse(policy.allows(who(), "d", "t"))

    def test_rules_without_methods_decide_every_method(self) -> None:
        policy = AccessRules(AccessConfig(rules=(AccessRule(effect="deny", tools=("rm",)),)))
        for method in ("tools/list", "tools/call", None):
            self.assertFalse(policy.allows(who(), "files", "rm", method=method))


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
        self.assertTrue(policy.allows(who(), "b", "review", kind="prompt"))
        self.assertFalse(policy.allows(who(), "b", "secret", kind="prompt"))
        self.assertFalse(policy.allows(who(), "b", "summary", kind="tool"))

    def test_resources_by_upstream_uri(self) -> None:
        policy = deny_but(*self.RULES)
        self.assertTrue(policy.allows(who(), "b", "file:///docs/a.md", kind="resource"))
        self.assertFalse(policy.allows(who(), "b", "file:///etc/passwd", kind="resource"))
        self.assertFalse(policy.allows(who(), "b", "aigw:b/file:///docs/a.md", kind="resource"))

    def test_a_rule_of_several_kinds_matches_either(self) -> None:
        policy = deny_but(*self.RULES)
        self.assertEqual(policy.decide(who(), "b", "read").rule, "access.rules[2]")
        self.assertFalse(policy.allows(who(), "b", "write"))
        self.assertFalse(policy.allows(who(), "b", None))

    def test_rules_naming_no_kind_match_every_item(self) -> None:
        policy = deny_but(AccessRule(effect="allow", backends=("b",)))
        for kind in ("tool", "prompt", "resource"):
            self.assertTrue(policy.allows(who(), "b", "anything", kind=kind))  # type: ignore[arg-type]


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
