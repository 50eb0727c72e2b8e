"""The route's ``securityPolicy.oauth``: ``auth``, ``public_url`` (from
``protectedResourceMetadata``) and the claims sent as headers (``claimToHeaders``)."""

from __future__ import annotations

from aigw.config import nodes as cp
from aigw.config.envoy.documents import Resource, Translator, mapping, scalar
from aigw.config.envoy.gateway import LISTEN_INTERFACE


def oauth(
    t: Translator, oauth: cp.Section | None, route: Resource, mcp_path: str, port: int | None
) -> tuple[cp.Node, cp.Node | None, cp.Node | None]:
    """``auth``, ``public_url`` and the claims every backend gets as headers."""
    local = None if port is None else f"http://{LISTEN_INTERFACE}:{port}"
    public_url: cp.Node | None = None if local is None else scalar(local, route.node)
    if oauth is None:
        t.notes.append(
            (
                "auth",
                "no securityPolicy.oauth: auth: none, as Envoy serves the route without "
                "tokens; anyone who reaches the listener uses every backend.",
            )
        )
        return scalar("none", route.node), public_url, None
    t.paths["auth"] = oauth.path
    pairs: list[tuple[str, cp.Node]] = []
    if not t.carry(oauth, "issuer", "auth.issuer", pairs):
        oauth.missing("issuer")
    if not t.carry(oauth, "audiences", "auth.audiences", pairs):
        t.notes.append(
            (
                "auth",
                "no oauth.audiences: Envoy would accept a token of any audience; aigw "
                "requires the resource URL (public_url + mcp_path) as audience, as the "
                "MCP specification does.",
            )
        )
    _jwks(t, oauth, pairs)
    public_url = _metadata(t, oauth, mcp_path, pairs) or public_url
    claims = _claims(t, oauth)
    return mapping(pairs, oauth.node), public_url, claims


def _jwks(t: Translator, oauth: cp.Section, pairs: list[tuple[str, cp.Node]]) -> None:
    jwks = t.open(oauth, "jwks", ("remoteJWKS", "localJWKS"))
    if jwks is not None:
        t.refuse(
            jwks,
            "localJWKS",
            "aigw fetches the keys from a URL: give remoteJWKS.uri, or leave jwks out to "
            "discover it from the issuer",
        )
        remote = t.open(
            jwks, "remoteJWKS", ("uri", "cacheDuration", "backendRefs", "backendSettings")
        )
        if remote is not None:
            t.refuse(remote, "backendRefs", "aigw fetches the JWKS URI directly")
            t.refuse(remote, "backendSettings", "aigw fetches the JWKS URI directly")
            if not t.carry(remote, "uri", "auth.jwks_uri", pairs):
                remote.missing("uri")
            t.carry(remote, "cacheDuration", "auth.jwks_refresh_interval", pairs)


def _metadata(
    t: Translator, oauth: cp.Section, mcp_path: str, pairs: list[tuple[str, cp.Node]]
) -> cp.Node | None:
    """The ``public_url`` that ``protectedResourceMetadata.resource`` says, if any."""
    metadata = t.open(
        oauth,
        "protectedResourceMetadata",
        (
            "resource",
            "resourceName",
            "scopesSupported",
            "resourceSigningAlgValuesSupported",
            "resourceDocumentation",
            "resourcePolicyUri",
        ),
    )
    if metadata is None and not oauth.has("protectedResourceMetadata"):
        oauth.missing("protectedResourceMetadata")
    if metadata is not None:
        t.refuse(
            metadata,
            "resourcePolicyUri",
            "aigw's resource metadata has no policy URI; remove it",
        )
        for envoy_key, native in (
            ("resourceName", "resource_name"),
            ("scopesSupported", "scopes_supported"),
            ("resourceSigningAlgValuesSupported", "algorithms"),
            ("resourceDocumentation", "resource_documentation"),
        ):
            t.carry(metadata, envoy_key, f"auth.{native}", pairs)
        resource = t.string(metadata, "resource")
        if resource is not None:
            return _public_url(t, metadata, resource, mcp_path)
        if not metadata.has("resource"):
            metadata.missing("resource")
    return None


def _public_url(
    t: Translator, metadata: cp.Section, resource: str, mcp_path: str
) -> cp.Node | None:
    node = metadata.values["resource"]
    path = metadata.child("resource")
    if not resource.endswith(mcp_path) or len(resource) == len(mcp_path):
        t.ctx.report(
            path,
            node,
            f"the resource must be the URL clients reach the route at, ending with its "
            f"path {mcp_path!r}: aigw serves the MCP resource at public_url + mcp_path",
        )
        return None
    t.paths["public_url"] = path
    return scalar(resource[: -len(mcp_path)], node)


def _claims(t: Translator, oauth: cp.Section) -> cp.Node | None:
    listed = t.items(oauth, "claimToHeaders")
    if not listed:
        return None
    pairs: list[tuple[str, cp.Node]] = []
    for path, item in listed:
        entry = cp.open_section(t.ctx, item, path, ("claim", "header"))
        if entry is None:
            continue
        claim = entry.need("claim", cp.as_nonempty_str, "")
        if entry.has("header") and claim:
            pairs.append((claim, entry.values["header"]))
        elif not entry.has("header"):
            entry.missing("header")
    t.notes.append(
        (
            "backends",
            "oauth.claimToHeaders is the route's: every backend gets the claims as "
            "headers (auth.claims_to_headers).",
        )
    )
    t.claims_path = oauth.child("claimToHeaders")
    return mapping(pairs, oauth.values["claimToHeaders"])
