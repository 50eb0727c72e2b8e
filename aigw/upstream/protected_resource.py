"""Which authorization server guards a backend, learnt from the backend itself.

MCP Authorization (2025-11-25, "Authorization Server Discovery"): a request without a
token is answered 401 with ``WWW-Authenticate: Bearer resource_metadata="..."`` (RFC
9728 §5.1); that document (RFC 9728 §3) names the ``authorization_servers``, whose own
metadata (RFC 8414, ``aigw.discovery``) names the endpoints aigw uses as the OAuth
client of that backend.  A backend that sends no ``resource_metadata`` is asked at the
well-known URL instead (RFC 9728 §3.1: path-inserted, then at the root).  Every URL
learnt on the way is checked before it is asked (``learnt_urls.py``): a backend cannot
send aigw anywhere it likes.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import attrs

from aigw.discovery import discover_metadata
from aigw.httpjson import Clock, FetchFailed, HTTPClient, excerpt, fetch, get_json_object
from aigw.upstream.learnt_urls import learnt_url_problem, same_origin

WELL_KNOWN = "/.well-known/oauth-protected-resource"
MAX_DOCUMENT_BYTES = 64 * 1024
#: RFC 9110 §11.2 auth-param: token68-free ``name=value`` pairs, the value a token or
#: a quoted string (its backslash escapes kept to be undone).
_PARAM = re.compile(r'([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')
#: RFC 6749 §3.3 scope-token: what may be asked for (and so sent in a URL and a form).
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
#: A request that any MCP endpoint must refuse without a token (a ping is harmless).
_PROBE = b'{"jsonrpc":"2.0","id":0,"method":"ping"}'


class DiscoveryFailed(Exception):
    """The backend's authorization server could not be learnt; ``str()`` says why."""


@attrs.frozen
class AuthorizationServer:
    """What aigw needs of the backend's authorization server, checked."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None
    #: RFC 9728 §2 ``scopes_supported`` of the backend (asked for when none configured).
    resource_scopes: tuple[str, ...] = ()


def bearer_params(header: str) -> dict[str, str]:
    """The auth-params of the ``Bearer`` challenge in a ``WWW-Authenticate`` value
    (RFC 6750 §3); empty when there is none."""
    match = re.search(r"(?:^|,)\s*Bearer(?:\s+|$)", header, re.IGNORECASE)
    if match is None:
        return {}
    params: dict[str, str] = {}
    rest = header[match.end() :]
    at = 0
    for found in _PARAM.finditer(rest):
        if not re.fullmatch(r"[\s,]*", rest[at : found.start()]):
            break  # another scheme ("..., Basic realm=x") ends the Bearer challenge
        name, quoted, token = found.groups()
        params.setdefault(name.lower(), re.sub(r"\\(.)", r"\1", quoted) if quoted else token)
        at = found.end()
    return params


def well_known_urls(resource: str) -> list[str]:
    """RFC 9728 §3.1: the well-known string inserted between host and path, then at the
    root (MCP 2025-11-25 "Protected Resource Metadata Discovery Requirements")."""
    parts = urllib.parse.urlsplit(resource)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    return [origin + WELL_KNOWN + path, origin + WELL_KNOWN] if path else [origin + WELL_KNOWN]


async def discover(
    resource_http: HTTPClient,
    server_http: HTTPClient,
    clock: Clock,
    resource: str,
    time_limit: float,
) -> AuthorizationServer:
    """The authorization server of the backend at ``resource``; DiscoveryFailed if none.
    ``resource_http`` asks the backend (its 401, RFC 9728 metadata), ``server_http`` the
    authorization server (RFC 8414): each may trust other certificates."""
    document = await _resource_metadata(resource_http, clock, resource, time_limit)
    servers = document.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
        raise DiscoveryFailed(f"{resource}'s metadata names no authorization_servers")
    issuer = servers[0]
    problem = learnt_url_problem(issuer, resource)
    if problem is None and urllib.parse.urlsplit(issuer).query:
        problem = "a ?query in the issuer (RFC 8414 §2)"
    if problem is not None:
        raise DiscoveryFailed(f"authorization server {excerpt(issuer)!r} refused: {problem}")
    try:
        metadata = await discover_metadata(server_http, clock, issuer, time_limit)
    except FetchFailed as error:
        raise DiscoveryFailed(f"authorization server {issuer}: {error}") from None
    return _server(issuer, metadata, document)


async def _resource_metadata(
    http: HTTPClient, clock: Clock, resource: str, time_limit: float
) -> dict[str, Any]:
    """RFC 9728 §3: the document the backend's 401 names, else at the well-known URLs;
    its ``resource`` must be the backend's (§3.3), or it is not used."""
    named = await _challenged(http, clock, resource, time_limit)
    problems: list[str] = []
    if named is not None:
        # RFC 9728 §3.1 puts the document on the resource's own host; one named elsewhere
        # is not asked (SSRF), the well-known URLs are.
        problem = learnt_url_problem(named, resource)
        if problem is None and not same_origin(named, resource):
            problem = f"not on {resource}'s origin"
        if problem is not None:
            problems.append(f"resource_metadata {excerpt(named)!r} ignored: {problem}")
            named = None
    for url in [named] if named else well_known_urls(resource):
        try:
            _, document = await get_json_object(
                http, clock, url, time_limit=time_limit, max_bytes=MAX_DOCUMENT_BYTES
            )
        except FetchFailed as error:
            problems.append(str(error))
            continue
        if _same_resource(document.get("resource"), resource):
            return document
        problems.append(f"{url} is the metadata of {document.get('resource')!r}, not {resource}")
    raise DiscoveryFailed("no protected resource metadata: " + "; ".join(problems))


async def _challenged(
    http: HTTPClient, clock: Clock, resource: str, time_limit: float
) -> str | None:
    """The ``resource_metadata`` URL of the backend's 401 to a request without a token."""
    try:
        got = await fetch(
            http,
            clock,
            "POST",
            resource,
            timeout=time_limit,
            max_bytes=MAX_DOCUMENT_BYTES,
            data=_PROBE,
            headers={
                "Content-Type": ["application/json"],
                "Accept": ["application/json, text/event-stream"],
            },
        )
    except FetchFailed as error:
        raise DiscoveryFailed(f"{resource} did not answer: {error}") from None
    if got.status != 401:
        return None
    named = bearer_params(got.headers.get("www-authenticate", "")).get("resource_metadata")
    if named is None or not named.startswith(("https://", "http://")):
        return None
    return named


def _same_resource(named: object, resource: str) -> bool:
    """RFC 9728 §3.3: identical, allowing only a trailing slash to differ."""
    return isinstance(named, str) and named.rstrip("/") == resource.rstrip("/")


def _server(
    issuer: str, metadata: dict[str, Any], resource_document: dict[str, Any]
) -> AuthorizationServer:
    """RFC 8414 §2 endpoints; MCP 2025-11-25 "Authorization Code Protection": no PKCE
    S256 advertised, no authorization (the client MUST refuse to proceed)."""
    endpoints: dict[str, str | None] = {}
    for key in ("authorization_endpoint", "token_endpoint", "registration_endpoint"):
        value = metadata.get(key)
        if not isinstance(value, str):
            endpoints[key] = None
            continue
        # Another origin than the issuer's is allowed (RFC 8414 §2 ties the endpoints to
        # nothing; real servers split them): the document is the issuer's (§3.3).
        problem = learnt_url_problem(value, issuer)
        if problem is not None:
            raise DiscoveryFailed(f"{issuer}'s {key} {excerpt(value)!r} refused: {problem}")
        endpoints[key] = value
    if endpoints["authorization_endpoint"] is None or endpoints["token_endpoint"] is None:
        raise DiscoveryFailed(f"{issuer}'s metadata lacks an authorization or token endpoint")
    methods = metadata.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        raise DiscoveryFailed(f"{issuer} does not advertise PKCE S256")
    scopes = resource_document.get("scopes_supported")
    return AuthorizationServer(
        issuer,
        endpoints["authorization_endpoint"],
        endpoints["token_endpoint"],
        endpoints["registration_endpoint"],
        tuple(s for s in scopes if isinstance(s, str) and _SCOPE.fullmatch(s))
        if isinstance(scopes, list)
        else (),
    )
