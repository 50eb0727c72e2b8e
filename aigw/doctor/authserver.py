"""The authorization server as aigw and MCP clients will use it.

Every check reads the issuer's metadata once (RFC 8414 §3, with the OpenID Connect
Discovery fallback of ``aigw/discovery.py``), then the JWK Set it names.
"""

from __future__ import annotations

from typing import Any

import attrs

from aigw.auth.jwks import KEY_TYPE_FOR_ALGORITHM, VerificationKey, read_key
from aigw.auth.metadata import advertised_scopes
from aigw.config import Config
from aigw.discovery import MAX_METADATA_BYTES, metadata_urls
from aigw.doctor.findings import Finding, fail, ok, warn
from aigw.httpjson import Clock, FetchFailed, HTTPClient, get_json_object

#: JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


@attrs.frozen
class Metadata:
    url: str
    document: dict[str, Any]


async def _get_json(http: HTTPClient, clock: Clock, url: str, time_limit: float, limit: int) -> Any:
    _, document = await get_json_object(http, clock, url, time_limit=time_limit, max_bytes=limit)
    return document


async def find_metadata(
    http: HTTPClient, clock: Clock, issuer: str, time_limit: float
) -> tuple[Metadata | None, list[str]]:
    """The first metadata document found (RFC 8414 §3.1, then OIDC Discovery §4), and
    why the others were not; the issuer is not compared here (``check_issuer`` does)."""
    problems = []
    for url in metadata_urls(issuer):
        try:
            document = await _get_json(http, clock, url, time_limit, MAX_METADATA_BYTES)
        except FetchFailed as error:
            problems.append(str(error))
        else:
            return Metadata(url, document), problems
    return None, problems


def check_issuer(issuer: str, found: Metadata | None, problems: list[str]) -> Finding:
    """RFC 8414 §3.3: the document's ``issuer`` MUST be identical to the configured one,
    else aigw (and every client) refuses it; no normalisation, a trailing slash counts."""
    if found is None:
        return fail(
            "issuer metadata",
            "not found: " + "; ".join(problems),
            "check auth.issuer and that the authorization server is up and reachable from here",
        )
    named = found.document.get("issuer")
    if named != issuer:
        return fail(
            "issuer metadata",
            f"{found.url} names issuer {named!r}, configured auth.issuer is {issuer!r}",
            f"set auth.issuer to exactly {named!r} (scheme, host, port, path and trailing "
            "slash must match what the server says and puts in its tokens' iss)",
        )
    return ok("issuer metadata", f"{found.url}: issuer {issuer}")


def check_registration(document: dict[str, Any]) -> Finding:
    """RFC 7591 §3: MCP clients register themselves at ``registration_endpoint``."""
    endpoint = document.get("registration_endpoint")
    if isinstance(endpoint, str) and endpoint:
        return ok("registration", f"registration_endpoint {endpoint}")
    return warn(
        "registration",
        "no registration_endpoint: clients cannot register dynamically (RFC 7591)",
        "enable dynamic client registration on the authorization server, or give each "
        "MCP client a pre-registered client id",
    )


def check_pkce(document: dict[str, Any]) -> Finding:
    """MCP Authorization requires PKCE S256 (RFC 7636 §4.2), and clients MUST refuse
    an authorization server whose ``code_challenge_methods_supported`` lacks it."""
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" in methods:
        return ok("pkce", "code_challenge_methods_supported includes S256")
    seen = (
        "code_challenge_methods_supported is absent"
        if methods is None
        else f"code_challenge_methods_supported is {methods!r}, without S256"
    )
    return fail(
        "pkce",
        seen + ": MCP clients refuse to log in",
        "enable PKCE with S256 on the authorization server and list it in its metadata",
    )


def check_scopes(config: Config, document: dict[str, Any]) -> Finding:
    """Every scope aigw advertises (RFC 9728 §2 ``scopes_supported``) is one the
    authorization server lists (RFC 8414 §2), else clients asking for it get invalid_scope."""
    wanted = advertised_scopes(config)
    if not wanted:
        return ok("scopes", "aigw advertises no scopes")
    listed = document.get("scopes_supported")
    if not isinstance(listed, list):
        return warn(
            "scopes",
            f"the authorization server lists no scopes_supported; aigw advertises "
            f"{' '.join(wanted)}",
            "make sure the authorization server grants these scopes to MCP clients",
        )
    missing = [scope for scope in wanted if scope not in listed]
    if missing:
        return fail(
            "scopes",
            f"aigw advertises {' '.join(missing)}, not in the authorization server's "
            f"scopes_supported ({' '.join(map(str, listed))})",
            "create these scopes on the authorization server, or change "
            "auth.scopes_supported / required_scopes",
        )
    return ok("scopes", f"the authorization server supports {' '.join(wanted)}")


async def check_jwks(
    config: Config, http: HTTPClient, clock: Clock, document: dict[str, Any] | None
) -> Finding:
    """RFC 7517 §5: the key set loads and holds a key usable with ``auth.algorithms``
    (kty, crv, alg, use as aigw checks them, RFC 8725 §3.1); a private member in a
    published key set is a leaked signing key."""
    auth = config.auth
    assert auth is not None
    allowed = frozenset(auth.algorithms) & KEY_TYPE_FOR_ALGORITHM.keys()
    if not allowed:
        return ok("jwks", "only HS* algorithms are allowed: no key set needed")
    uri = auth.jwks_uri or (document or {}).get("jwks_uri")
    if not isinstance(uri, str):
        return fail(
            "jwks",
            "no jwks_uri: neither auth.jwks_uri nor the issuer's metadata names one",
            "set auth.jwks_uri, or fix the issuer metadata",
        )
    try:
        keys = (await _get_json(http, clock, uri, auth.http_timeout, auth.jwks_max_bytes)).get(
            "keys"
        )
    except FetchFailed as error:
        return fail("jwks", str(error), "check jwks_uri and that the server is up")
    if not isinstance(keys, list):
        return fail("jwks", f"{uri} has no 'keys' list", "serve a JWK Set (RFC 7517 §5)")
    private = [_kid(jwk) for jwk in keys if isinstance(jwk, dict) and PRIVATE_MEMBERS & jwk.keys()]
    if private:
        return fail(
            "jwks",
            f"{uri} publishes private key material (keys {', '.join(private)})",
            "rotate these keys now and publish only public keys",
        )
    usable, why = [], []
    for jwk in keys:
        read = read_key(jwk, allowed)
        if isinstance(read, VerificationKey):
            usable.append(_kid(jwk))
        else:
            why.append(f"{_kid(jwk)}: {read}")
    if not usable:
        return fail(
            "jwks",
            f"{uri}: no key usable with {', '.join(sorted(allowed))} ({'; '.join(why) or 'empty'})",
            "publish a signing key of an allowed algorithm, or change auth.algorithms",
        )
    return ok("jwks", f"{uri}: {len(usable)} usable key(s) ({', '.join(usable)})")


def _kid(jwk: object) -> str:
    kid = jwk.get("kid") if isinstance(jwk, dict) else None
    return repr(kid) if kid is not None else "(no kid)"


def _not_checked(check: str) -> Finding:
    return warn(check, "not checked: no issuer metadata", "fix the issuer metadata first")


async def check_authorization_server(
    config: Config, http: HTTPClient, clock: Clock
) -> list[Finding]:
    """Issuer metadata, JWKS, registration, PKCE, scopes: in that order.

    A document naming another issuer fails the first check (aigw would not use it)
    but is still read for the others, so that one run shows every problem.
    """
    auth = config.auth
    if auth is None:
        return [
            warn(
                "auth",
                "auth: none: the MCP endpoint is open to anyone who reaches it; "
                "authorization server not checked",
                "set auth.issuer for anything but local development",
            )
        ]
    found, problems = await find_metadata(http, clock, auth.issuer, auth.http_timeout)
    findings = [check_issuer(auth.issuer, found, problems)]
    document = found.document if found is not None else None
    findings.append(await check_jwks(config, http, clock, document))
    if document is None:
        return [*findings, *(_not_checked(c) for c in ("registration", "pkce", "scopes"))]
    return [
        *findings,
        check_registration(document),
        check_pkce(document),
        check_scopes(config, document),
    ]
