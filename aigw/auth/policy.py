"""Which principal may use which backend and item: the ``access`` rules.

A rule matches when each condition it gives holds (``unmet`` says which one does
not, for ``aigw access explain``).  Claims are found by their whole name first
(``https://example.com/roles`` is one claim), else by a dotted path through
nested objects (``realm_access.roles``, where Keycloak puts realm roles); an
array claim matches when it contains the value.  ``methods`` globs match the MCP
method: listing asks with the list method for each item, so rules without
``methods`` decide listing and use alike, and a rule may refuse ``tools/call``
while leaving ``tools/list`` to show the tool.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from aigw.config import AccessConfig, AccessRule, Config
from aigw.config.holder import ConfigHolder
from aigw.gateway.access import Decision, Kind
from aigw.principal import Principal, claim_at

#: A claim value longer than this is cut in ``unmet``'s explanation.
_SHOWN_CLAIM = 80


def _any_glob(patterns: Iterable[str], value: str) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def _claim_matches(claim: object, wanted: str) -> bool:
    """Equal, or contained in an array claim (``groups``, ``roles``, ``aud``)."""
    if isinstance(claim, list):
        return wanted in claim
    return claim == wanted


def _targets(rule: AccessRule) -> dict[Kind, tuple[str, ...]]:
    return {"tool": rule.tools, "prompt": rule.prompts, "resource": rule.resources}


def unmet(
    rule: AccessRule,
    principal: Principal,
    backend: str,
    name: str | None,
    kind: Kind = "tool",
    method: str | None = None,
) -> str | None:
    """The first condition of ``rule`` that does not hold, in words; None when it matches.

    An empty condition holds always.  ``tools``, ``prompts`` and ``resources`` globs
    match a named item of their kind only: a rule naming tools does not match
    requests that name none, nor a prompt, so it cannot grant them.
    """
    if rule.subjects and principal.subject not in rule.subjects:
        return f"subjects: sub {principal.subject!r} is not one of them"
    if rule.clients and principal.client_id not in rule.clients:
        return f"clients: client {principal.client_id!r} is not one of them"
    missing = [scope for scope in rule.scopes if scope not in principal.scopes]
    if missing:
        return f"scopes: {' '.join(missing)} not held"
    for path, wanted in rule.claims.items():
        claim = claim_at(principal.claims, path)
        if not _claim_matches(claim, wanted):
            shown = "absent" if claim is None else repr(claim)[:_SHOWN_CLAIM]
            return f"claims: {path} is {shown}, neither {wanted!r} nor an array holding it"
    if rule.backends and not _any_glob(rule.backends, backend):
        return f"backends: {backend!r} matches none of {list(rule.backends)}"
    if rule.methods and (method is None or not _any_glob(rule.methods, method)):
        return f"methods: {method or 'no method'!r} matches none of {list(rule.methods)}"
    targets = _targets(rule)
    if any(targets.values()):
        globs = targets[kind]
        if name is None or not globs:
            given = ", ".join(k + "s" for k, g in targets.items() if g)
            return f"{given}: the request names {'no item' if name is None else 'a ' + kind}"
        if not _any_glob(globs, name):
            return f"{kind}s: {name!r} matches none of {list(globs)}"
    return None


def rule_matches(
    rule: AccessRule,
    principal: Principal,
    backend: str,
    name: str | None,
    kind: Kind = "tool",
    method: str | None = None,
) -> bool:
    """Every condition the rule gives holds (see ``unmet``)."""
    return unmet(rule, principal, backend, name, kind, method) is None


class AccessRules:
    """The first matching rule decides; none matching, ``default`` does."""

    def __init__(self, config: AccessConfig) -> None:
        self._config = config

    def decide(
        self,
        principal: Principal,
        backend: str,
        name: str | None = None,
        *,
        kind: Kind = "tool",
        method: str | None = None,
    ) -> Decision:
        for index, rule in enumerate(self._config.rules):
            if rule_matches(rule, principal, backend, name, kind, method):
                return Decision(rule.effect == "allow", f"access.rules[{index}]")
        return Decision(self._config.default == "allow", "access.default")


class HeldAccessRules:
    """The ``access`` rules of the config in force: a reload swaps them with the config
    (``config/holder.py``), so the next decision is made by the new rules."""

    def __init__(self, holder: ConfigHolder) -> None:
        self._rules = AccessRules(holder.current.access)
        holder.subscribe(self._swapped)

    def _swapped(self, old: Config, new: Config) -> None:
        if new.access != old.access:
            self._rules = AccessRules(new.access)

    def decide(
        self,
        principal: Principal,
        backend: str,
        name: str | None = None,
        *,
        kind: Kind = "tool",
        method: str | None = None,
    ) -> Decision:
        return self._rules.decide(principal, backend, name, kind=kind, method=method)
