"""Which principal may use which backend and tool: the ``access`` rules."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from aigw.config import AccessConfig, AccessRule, Config
from aigw.config.holder import ConfigHolder
from aigw.gateway.access import Decision
from aigw.principal import Principal


def _any_glob(patterns: Iterable[str], value: str) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def _claim_matches(claim: object, wanted: str) -> bool:
    """Equal, or contained in a list claim (``groups``, ``roles``, ``aud``)."""
    if isinstance(claim, list):
        return wanted in claim
    return claim == wanted


def rule_matches(rule: AccessRule, principal: Principal, backend: str, tool: str | None) -> bool:
    """Every condition the rule gives holds; an empty condition holds always.

    ``tools`` globs match a named tool only: a rule naming tools does not match
    requests that name none (listing tools, say), so it cannot grant them.
    """
    if rule.subjects and principal.subject not in rule.subjects:
        return False
    if rule.clients and principal.client_id not in rule.clients:
        return False
    if not principal.has_scopes(rule.scopes):
        return False
    if any(not _claim_matches(principal.claims.get(k), v) for k, v in rule.claims.items()):
        return False
    if rule.backends and not _any_glob(rule.backends, backend):
        return False
    return not rule.tools or (tool is not None and _any_glob(rule.tools, tool))


class AccessRules:
    """The first matching rule decides; none matching, ``default`` does."""

    def __init__(self, config: AccessConfig) -> None:
        self._config = config

    def decide(self, principal: Principal, backend: str, tool: str | None = None) -> Decision:
        for index, rule in enumerate(self._config.rules):
            if rule_matches(rule, principal, backend, tool):
                return Decision(rule.effect == "allow", f"access.rules[{index}]")
        return Decision(self._config.default == "allow", "access.default")

    def allows(self, principal: Principal, backend: str, tool: str | None = None) -> bool:
        return self.decide(principal, backend, tool).allowed


class HeldAccessRules:
    """The ``access`` rules of the config in force: a reload swaps them with the config
    (``config/holder.py``), so the next decision is made by the new rules."""

    def __init__(self, holder: ConfigHolder) -> None:
        self._rules = AccessRules(holder.current.access)
        holder.subscribe(self._swapped)

    def _swapped(self, old: Config, new: Config) -> None:
        if new.access != old.access:
            self._rules = AccessRules(new.access)

    def decide(self, principal: Principal, backend: str, tool: str | None = None) -> Decision:
        return self._rules.decide(principal, backend, tool)
