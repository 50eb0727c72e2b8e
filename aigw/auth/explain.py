"""``aigw access explain``: how the access rules decide one request, for given token claims.

It asks what the gateway asks, in the order ``gateway/calls.py`` asks it: the
backend's tool selector, its ``required_scopes``, then each access rule
(``policy.unmet`` says which condition failed), and says the answer rule by rule.
The decision itself comes from ``AccessRules``, the gateway's own policy, so the
explanation cannot drift from what the gateway does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from aigw.auth.policy import AccessRules, unmet
from aigw.auth.tokens import principal_of
from aigw.config import EX_CONFIG, AccessRule, Config, ConfigError, format_problems, load_config
from aigw.config.values import DECIDED_METHODS
from aigw.gateway.access import Kind
from aigw.gateway.snapshot import Snapshot
from aigw.principal import Principal
from aigw.protocol.names import resolve_uri, split_name

#: Exit statuses: allowed, denied, a question naming nothing (as argparse's usage errors).
ALLOWED, DENIED, BAD_QUESTION = 0, 1, 2
#: The method asked about when none is given, per kind of item.
DEFAULT_METHODS: Mapping[Kind, str] = {
    "tool": "tools/call",
    "prompt": "prompts/get",
    "resource": "resources/read",
}


class BadQuestion(Exception):
    """The claims or the name given cannot be asked about."""


@attrs.frozen
class Explanation:
    lines: tuple[str, ...]
    allowed: bool
    rule: str


def _given(rule: AccessRule) -> str:
    """The conditions a matching rule gave, or that it gives none."""
    keys = [
        f.name for f in attrs.fields(AccessRule) if f.name != "effect" and getattr(rule, f.name)
    ]
    return ", ".join(keys) if keys else "no conditions: matches every request"


def target(config: Config, kind: Kind, exposed: str) -> tuple[str, str]:
    """``(backend, upstream name or URI)`` of an exposed name or URI of ``config``."""
    resolved = resolve_uri(exposed) if kind == "resource" else split_name(exposed)
    if resolved is None:
        shape = "aigw:<backend>/<uri>" if kind == "resource" else "<backend>__<name>"
        raise BadQuestion(f"{exposed!r} is not an exposed {kind} name ({shape})")
    if resolved[0] not in {b.name for b in config.backends}:
        raise BadQuestion(f"{config.source} has no backend {resolved[0]!r}")
    return resolved


def describe(principal: Principal) -> str:
    scopes = " ".join(sorted(principal.scopes)) or "none"
    return f"principal: sub {principal.subject}, client {principal.client_id}, scopes {scopes}"


def explain(
    config: Config, principal: Principal, kind: Kind, exposed: str, method: str
) -> Explanation:
    """Every check of one request in order, said; then the decision and its rule."""
    backend, name = target(config, kind, exposed)
    snapshot = Snapshot.of(config)
    index = snapshot.indexes[backend]
    lines = [f"{method} {exposed}: backend {backend}, {kind} {name}", describe(principal)]
    if kind == "tool" and not snapshot.filters[backend].allows(name):
        rule = f"backends[{index}].tools"
        lines += [f"{rule}: the backend's tool selector hides {name!r}", f"denied by {rule}"]
        return Explanation(tuple(lines), False, rule)
    needed = snapshot.unmet_scopes(principal, backend)
    if needed:
        rule = snapshot.scopes_rule(backend)
        lines += [f"{rule}: needs {' '.join(needed)} (403, step-up)", f"denied by {rule}"]
        return Explanation(tuple(lines), False, rule)
    if snapshot.backends[backend].required_scopes:
        lines.append(f"{snapshot.scopes_rule(backend)}: held")
    matched = False
    for number, rule_config in enumerate(config.access.rules):
        reason = unmet(rule_config, principal, backend, name, kind, method)
        head = f"access.rules[{number}] {rule_config.effect}"
        if reason is not None:
            lines.append(f"{head}: no match ({reason})")
        else:
            later = ", but an earlier rule decided" if matched else ""
            lines.append(f"{head}: matches ({_given(rule_config)}){later}")
            matched = True
    if not matched:
        lines.append(f"access.default: {config.access.default}")
    decision = AccessRules(config.access).decide(principal, backend, name, kind=kind, method=method)
    verdict = "allowed" if decision.allowed else "denied"
    lines.append(f"{verdict} by {decision.rule}")
    return Explanation(tuple(lines), decision.allowed, decision.rule)


def read_claims(path: str) -> Principal:
    """The principal a token with the claims of the JSON file ``path`` would be."""
    try:
        with open(path, "rb") as file:
            claims: Any = json.load(file)
    except (OSError, ValueError) as error:
        raise BadQuestion(f"{path}: {error}") from None
    if not isinstance(claims, dict):
        raise BadQuestion(f"{path}: the claims must be a JSON object")
    issuer = claims.get("iss")
    principal = principal_of(claims, issuer if isinstance(issuer, str) else "")
    if principal is None:
        raise BadQuestion(f"{path}: the claims name no subject (sub) nor client (client_id)")
    return principal


def add_parser(commands: Any) -> None:
    """``aigw access explain`` under ``commands`` (the CLI's subparsers)."""
    access = commands.add_parser("access", help="inspect the access rules")
    explain_parser = access.add_subparsers(dest="access_command", required=True).add_parser(
        "explain", help="show which rule decides a request, and why"
    )
    explain_parser.add_argument("config", help="path to the YAML configuration file")
    explain_parser.add_argument(
        "--claims", required=True, metavar="FILE", help="the token's claims, a JSON object"
    )
    item = explain_parser.add_mutually_exclusive_group(required=True)
    item.add_argument("--tool", metavar="NAME", help="exposed tool name: <backend>__<tool>")
    item.add_argument("--prompt", metavar="NAME", help="exposed prompt name")
    item.add_argument("--resource", metavar="URI", help="exposed URI: aigw:<backend>/<uri>")
    explain_parser.add_argument(
        "--method", choices=DECIDED_METHODS, help="default: tools/call, prompts/get, resources/read"
    )


def run(args: argparse.Namespace) -> int:
    """0 allowed, 1 denied, 78 (EX_CONFIG) on a config problem, 2 on a bad question."""
    try:
        config = load_config(args.config)
    except ConfigError as error:
        sys.stderr.write(format_problems(error) + "\n")
        return EX_CONFIG
    kind: Kind = "tool" if args.tool else "prompt" if args.prompt else "resource"
    exposed: str = args.tool or args.prompt or args.resource
    try:
        principal = read_claims(args.claims)
        said = explain(config, principal, kind, exposed, args.method or DEFAULT_METHODS[kind])
    except BadQuestion as error:
        sys.stderr.write(f"aigw access explain: {error}\n")
        return BAD_QUESTION
    sys.stdout.write("\n".join(said.lines) + "\n")
    return ALLOWED if said.allowed else DENIED
