"""The access policy: first matching rule decides, else the default."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.policy import AccessRules
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
