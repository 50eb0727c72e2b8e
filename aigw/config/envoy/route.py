"""The ``MCPRoute``: the MCP endpoint, made into the native config's root."""

from __future__ import annotations

from aigw.config import nodes as cp
from aigw.config.envoy import authorization, backends, gateway, security
from aigw.config.envoy.documents import Resource, Translator, mapping, scalar, sequence


def root(t: Translator) -> cp.MappingNode | None:
    gateways = t.by_kind.get("Gateway", [])
    routes = t.by_kind.get("MCPRoute", [])
    anchor = next(iter(routes or gateways), None)
    for kind, found in (("Gateway", gateways), ("MCPRoute", routes)):
        if len(found) > 1:
            t.ctx.report(
                found[1].path,
                found[1].node,
                f"one {kind} only: aigw serves one MCP endpoint (the first is {found[0].path})",
            )
        elif not found and kind not in t.seen:
            where = anchor.node if anchor is not None else None
            t.ctx.report(kind, where, f"the file has no {kind}")
    if not gateways or not routes:
        return None
    listen, port = gateway.gateway(t, gateways[0])
    return route(t, routes[0], listen, port)


def route(
    t: Translator, route: Resource, listen: list[cp.Node], port: int | None
) -> cp.MappingNode | None:
    spec = t.open(
        route.section,
        "spec",
        (
            "parentRefs",
            "path",
            "headers",
            "hostnames",
            "backendRefs",
            "securityPolicy",
            "backendSelector",
        ),
    )
    if spec is None:
        return None
    t.refuse(spec, "headers", "aigw does not match requests on headers; remove it")
    t.refuse(spec, "hostnames", "aigw does not route by host name; remove it")
    t.refuse(
        spec,
        "backendSelector",
        "CEL expressions are not supported by aigw (access rules decide which backends "
        "a user may use)",
    )
    pairs: list[tuple[str, cp.Node]] = [("listen", sequence(listen, route.node))]
    mcp_path_node = spec.values.get("path")
    mcp_path = (
        "/mcp"
        if mcp_path_node is None
        else cp.as_nonempty_str(t.ctx, spec.child("path"), mcp_path_node)
    )
    if mcp_path_node is not None:
        t.paths["mcp_path"] = spec.child("path")
    policy, oauth = _policy(t, spec)
    auth, public_url, claims = security.oauth(t, oauth, route, mcp_path or "/mcp", port)
    if public_url is not None:
        pairs.append(("public_url", public_url))
    pairs.append(("mcp_path", mcp_path_node or scalar("/mcp", route.node)))
    pairs.append(("auth", auth))
    servers = backends.backends(t, spec, claims)
    pairs.append(("backends", sequence(servers, spec.values.get("backendRefs", route.node))))
    names = t.ref_names
    if policy is not None and policy.has("authorization"):
        access = authorization.authorization(t, policy, names, oauth is not None)
        if access is not None:
            pairs.append(("access", access))
    return mapping(pairs, route.node)


def _policy(t: Translator, spec: cp.Section) -> tuple[cp.Section | None, cp.Section | None]:
    """The route's ``securityPolicy`` and its ``oauth``."""
    policy = t.open(spec, "securityPolicy", ("oauth", "authorization", "apiKeyAuth", "extAuth"))
    oauth = None
    if policy is not None:
        t.refuse(policy, "extAuth", "external authorization is not supported by aigw")
        t.refuse(
            policy,
            "apiKeyAuth",
            "client API keys are not supported by aigw (clients authenticate with OAuth)",
        )
        oauth = t.open(
            policy,
            "oauth",
            ("issuer", "audiences", "jwks", "protectedResourceMetadata", "claimToHeaders"),
        )
    return policy, oauth
