"""The route's ``securityPolicy.authorization``: its rules, as native ``access``."""

from __future__ import annotations

import itertools

from aigw.config import nodes as cp
from aigw.config.envoy.documents import Translator, mapping, scalar, sequence

#: Access rules one Envoy rule may become (its claim values times its backends).
MAX_RULES = 256


def authorization(
    t: Translator, policy: cp.Section, names: set[str], oauth: bool
) -> cp.Node | None:
    section = t.open(policy, "authorization", ("defaultAction", "rules"))
    if section is None:
        return None
    t.paths["access"] = section.path
    default = section.read("defaultAction", _action, "Deny")
    rules: list[cp.Node] = []
    for path, item in t.items(section, "rules"):
        first = len(rules)
        rules.extend(_rule(t, path, item, names, oauth))
        for index in range(first, len(rules)):
            t.paths[f"access.rules[{index}]"] = path
    at = section.values.get("defaultAction", section.node)
    t.notes.append(
        (
            "access",
            "authorization: Envoy's rules govern tools only; aigw's access.default also "
            "decides prompts and resources, and a rule without target matches them too. A "
            "denied call answers as an unknown tool (Envoy: 403). A rule with several "
            "claim values or backends is one aigw rule for each; a claim matches a string "
            "equal to the value or a list holding it, whatever its valueType.",
        )
    )
    pairs = [("default", scalar(default.lower(), at)), ("rules", sequence(rules, section.node))]
    return mapping(pairs, section.node)


def _rule(t: Translator, path: str, node: cp.Node, names: set[str], oauth: bool) -> list[cp.Node]:
    rule = cp.open_section(t.ctx, node, path, ("source", "target", "cel", "action"))
    if rule is None:
        return []
    t.refuse(rule, "cel", "CEL expressions are not supported by aigw")
    effect = rule.read("action", _action, "Allow").lower()
    conditions: list[tuple[str, cp.Node]] = []
    claim_values: list[list[tuple[str, cp.Node]]] = []
    source = t.open(rule, "source", ("jwt",))
    jwt = None if source is None else t.open(source, "jwt", ("scopes", "claims"))
    if jwt is not None and not oauth:
        t.ctx.report(jwt.path, jwt.node, "a jwt source needs securityPolicy.oauth")
    if jwt is not None:
        if jwt.has("scopes"):
            conditions.append(("scopes", jwt.values["scopes"]))
        for claim_path, claim_node in t.items(jwt, "claims"):
            values = _claim(t, claim_path, claim_node)
            if values is not None:
                claim_values.append(values)
    targets = _targets(t, rule, names)
    combos = list(itertools.product(*claim_values)) if claim_values else [()]
    count = len(combos) * max(1, len(targets))
    if count > MAX_RULES:
        t.ctx.report(
            path,
            node,
            f"becomes {count} aigw rules (each claim value times each backend), more "
            f"than {MAX_RULES}: split it",
        )
        return []
    made: list[cp.Node] = []
    for combo in combos:
        chosen: list[tuple[cp.Node, list[cp.Node]] | None] = [*targets] or [None]
        for backend_and_tools in chosen:
            pairs: list[tuple[str, cp.Node]] = [("effect", scalar(effect, node)), *conditions]
            if combo:
                pairs.append(("claims", mapping(combo, node)))
            if backend_and_tools is not None:
                backend_node, tools = backend_and_tools
                pairs.append(("backends", sequence([backend_node], backend_node)))
                pairs.append(("tools", sequence(tools, backend_node)))
            made.append(mapping(pairs, node))
    return made


def _targets(
    t: Translator, rule: cp.Section, names: set[str]
) -> list[tuple[cp.Node, list[cp.Node]]]:
    """A rule's ``target.tools``: each backend named, with its tools as patterns."""
    target = t.open(rule, "target", ("tools",))
    if target is None:
        return []
    groups: dict[str, tuple[cp.Node, list[cp.Node]]] = {}
    for tool_path, tool_node in t.items(target, "tools"):
        call = cp.open_section(t.ctx, tool_node, tool_path, ("backend", "tool"))
        if call is None:
            continue
        backend = call.need("backend", cp.as_nonempty_str, "")
        tool = call.need("tool", cp.as_nonempty_str, "")
        if backend and backend not in names:
            t.ctx.report(
                call.child("backend"),
                call.values["backend"],
                f"{backend!r} is not one of the route's backendRefs",
            )
        elif backend and tool:
            escaped = scalar(_glob_escape(tool), call.values["tool"])
            groups.setdefault(backend, (call.values["backend"], []))[1].append(escaped)
    return list(groups.values())


def _claim(t: Translator, path: str, node: cp.Node) -> list[tuple[str, cp.Node]] | None:
    claim = cp.open_section(t.ctx, node, path, ("name", "valueType", "values"))
    if claim is None:
        return None
    name = claim.need("name", cp.as_nonempty_str, "")
    claim.read("valueType", cp.choice("String", "StringArray"), "String")
    values = t.items(claim, "values")
    if not claim.has("values"):
        claim.missing("values")
    if not name:
        return None
    if "." in name:
        t.ctx.report(
            claim.child("name"),
            claim.values["name"],
            f"{name!r} is a nested claim: aigw's access rules match top-level claims only",
        )
        return None
    if name in ("scope", "scp"):
        t.ctx.report(
            claim.child("name"), claim.values["name"], f"{name!r} is for scopes: use scopes"
        )
        return None
    found = []
    for value_path, value in values:
        if cp.as_nonempty_str(t.ctx, value_path, value) is not None:
            found.append((name, value))
    return found or None


def _action(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    return cp.choice("Allow", "Deny")(ctx, path, node)


def _glob_escape(name: str) -> str:
    """A tool name as an fnmatch pattern that matches it alone."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
