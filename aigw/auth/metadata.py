"""OAuth 2.0 Protected Resource Metadata (RFC 9728) for the gateway's MCP endpoint.

MCP clients find the authorization server through this document (MCP
Authorization 2025-11-25, "Authorization Server Location"): the URL is given in
the ``resource_metadata`` parameter of every challenge, and clients that got no
challenge try the path-inserted well-known URL, then the root one.
"""

from __future__ import annotations

import urllib.parse

from aigw.config import Config

WELL_KNOWN_PROTECTED_RESOURCE = "/.well-known/oauth-protected-resource"


def _resource_parts(config: Config) -> tuple[str, str]:
    """(scheme://authority, path) of the resource URL, path without trailing '/'."""
    parts = urllib.parse.urlsplit(config.resource_url)
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


def metadata_paths(config: Config) -> tuple[str, ...]:
    """The URL paths, from the host root, where the metadata is served.

    The path-inserted form comes first (RFC 9728 §3.1: the well-known string is
    inserted between the host and the resource's path); the root form follows
    for clients that fall back to it (MCP Authorization, "Protected Resource
    Metadata Discovery Requirements").
    """
    _, path = _resource_parts(config)
    if not path:
        return (WELL_KNOWN_PROTECTED_RESOURCE,)
    return (WELL_KNOWN_PROTECTED_RESOURCE + path, WELL_KNOWN_PROTECTED_RESOURCE)


def metadata_url(config: Config) -> str:
    """The absolute metadata URL named in ``resource_metadata`` of challenges."""
    origin, _ = _resource_parts(config)
    return origin + metadata_paths(config)[0]


def protected_resource_metadata(config: Config) -> dict[str, object]:
    """The RFC 9728 §2 metadata document, as a JSON-ready dict.

    ``resource`` is the canonical resource URL (RFC 8707 §2), which clients
    compare with the URL they used (RFC 9728 §3.3) and send back as the
    ``resource`` parameter, so tokens are minted for this audience.  Tokens are
    accepted only in the Authorization header (RFC 6750 §2.1; MCP forbids the
    query string), hence ``bearer_methods_supported: ["header"]``.
    """
    auth = config.auth
    if auth is None:
        raise ValueError("protected resource metadata needs an auth section")
    document: dict[str, object] = {
        "resource": config.resource_url,
        "authorization_servers": [auth.issuer],
        "bearer_methods_supported": ["header"],
    }
    scopes = advertised_scopes(config)
    if scopes:
        document["scopes_supported"] = list(scopes)
    if auth.resource_name is not None:
        document["resource_name"] = auth.resource_name
    if auth.resource_documentation is not None:
        document["resource_documentation"] = auth.resource_documentation
    return document


def advertised_scopes(config: Config) -> tuple[str, ...]:
    """``scopes_supported`` as configured, else every scope some request needs.

    MCP clients request all of ``scopes_supported`` when a challenge names no
    scope, so when the operator lists none, the scopes the gateway actually
    checks are the useful answer; in order, without duplicates.
    """
    auth = config.auth
    if auth is None:
        return ()
    if auth.scopes_supported:
        return auth.scopes_supported
    needed = list(auth.required_scopes)
    for backend in config.backends:
        needed.extend(backend.required_scopes)
    return tuple(dict.fromkeys(needed))
