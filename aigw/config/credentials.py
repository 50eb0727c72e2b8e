"""How a backend's requests are authenticated (``backends[].auth``), never with the user's token.

At most one mode gives the ``Authorization`` header: the gateway's own token
(``client_credentials``, RFC 6749 §4.4) or a token exchanged for the user's (RFC 8693);
``claims_to_headers`` may accompany either.  ``user_oauth``: aigw is the OAuth client
of the backend's own authorization server, one token per user (``upstream/user_oauth.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import attrs

from aigw.config import fields, values
from aigw.config import nodes as cp
from aigw.config.fields import read_as, read_either, required, section_of
from aigw.config.headers import claims_headers

#: RFC 6749 §2.3.1: how aigw authenticates to a token endpoint.
ClientAuthMethod = Literal["client_secret_basic", "client_secret_post"]
#: RFC 8693 §3: the token type aigw asks a token exchange for by default.
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN

_duration = read_as(cp.duration())
_client_auth = read_as(cp.choice(*get_args(ClientAuthMethod)))
_secret = read_either("client_secret_file", cp.secret_text, required=True, placeholder="")
_scope = read_as(values.scope_list)
#: The only certificates trusted at a mode's authorization server (its token endpoint,
#: its RFC 8414 metadata).  None: the backend's own ``ca_file`` (one private CA usually
#: signs both), else the system's roots (``upstream.token_endpoint.server_client``).
_ca_file = read_as(values.ca_file)


@attrs.frozen
class ClientCredentialsConfig:
    """The gateway's own token for a backend: the OAuth 2.0 client credentials grant
    (RFC 6749 §4.4) at ``token_endpoint``, or at the one ``issuer``'s metadata names
    (RFC 8414); exactly one of the two (``_client_credentials`` checks)."""

    client_id: str = attrs.field(metadata=required(cp.as_nonempty_str, ""))
    client_secret: str = attrs.field(repr=False, metadata=_secret)
    token_endpoint: str | None = attrs.field(
        default=None, metadata=read_as(values.url(secure=True))
    )
    issuer: str | None = attrs.field(
        default=None, metadata=read_as(values.url(query=False, secure=True))
    )
    scope: tuple[str, ...] = attrs.field(default=(), metadata=_scope)
    #: RFC 8707 §2: the backend the token is for.
    resource: str | None = attrs.field(default=None, metadata=read_as(values.resource))
    audience: str | None = attrs.field(default=None, metadata=read_as(cp.as_nonempty_str))
    client_auth: ClientAuthMethod = attrs.field(
        default="client_secret_basic", metadata=_client_auth
    )
    timeout: float = attrs.field(default=10.0, metadata=_duration)
    ca_file: str | None = attrs.field(default=None, metadata=_ca_file)


@attrs.frozen
class TokenExchangeConfig:
    """A token for the backend, per user: RFC 8693 token exchange at ``token_endpoint``,
    the user's verified token as ``subject_token``."""

    token_endpoint: str = attrs.field(metadata=required(values.url(secure=True), ""))
    client_id: str = attrs.field(metadata=required(cp.as_nonempty_str, ""))
    client_secret: str = attrs.field(repr=False, metadata=_secret)
    #: RFC 8693 §2.1: the backend, by logical name (``audience``) or URI (``resource``).
    audience: str | None = attrs.field(default=None, metadata=read_as(cp.as_nonempty_str))
    resource: str | None = attrs.field(default=None, metadata=read_as(values.resource))
    scope: tuple[str, ...] = attrs.field(default=(), metadata=_scope)
    requested_token_type: str = attrs.field(
        default=ACCESS_TOKEN_TYPE, metadata=read_as(values.absolute_uri)
    )
    client_auth: ClientAuthMethod = attrs.field(
        default="client_secret_basic", metadata=_client_auth
    )
    timeout: float = attrs.field(default=10.0, metadata=_duration)
    #: Exchanged tokens kept, one per user token, until they expire.
    cache_size: int = attrs.field(default=10000, metadata=read_as(cp.integer(0)))
    ca_file: str | None = attrs.field(default=None, metadata=_ca_file)


@attrs.frozen
class UserOAuthConfig:
    """Each user's own token at the backend's authorization server: aigw is its OAuth
    client (authorization code + PKCE, the user sent there by URL elicitation).

    ``client_id`` (and ``client_secret``, for a confidential client) are optional: without
    them aigw registers itself (RFC 7591) with the authorization server the backend's
    protected resource metadata names (RFC 9728)."""

    client_id: str | None = attrs.field(default=None, metadata=read_as(cp.as_nonempty_str))
    client_secret: str | None = attrs.field(
        default=None, repr=False, metadata=read_either("client_secret_file", cp.secret_text)
    )
    #: Scopes asked of the backend's authorization server (default: those the backend's
    #: metadata lists in ``scopes_supported``, RFC 9728 §2, else none).
    scope: tuple[str, ...] = attrs.field(default=(), metadata=_scope)
    client_auth: ClientAuthMethod = attrs.field(
        default="client_secret_basic", metadata=_client_auth
    )
    timeout: float = attrs.field(default=10.0, metadata=_duration)
    #: How long the link handed to the user (the URL elicitation) may be opened.
    link_ttl: float = attrs.field(default=600.0, metadata=_duration)
    #: As the other modes' (``_ca_file``), for its RFC 7591 registration too.  A public
    #: server before a private-CA backend: name the system's bundle here.
    ca_file: str | None = attrs.field(default=None, metadata=_ca_file)


def _user_oauth(ctx: cp.Context, path: str, node: cp.Node) -> UserOAuthConfig | None:
    """A client secret belongs to a client id: a secret alone names no client."""
    section = cp.open_section(ctx, node, path, fields.keys(UserOAuthConfig))
    if section is None:
        return None
    secret = next((k for k in ("client_secret", "client_secret_file") if section.has(k)), None)
    if secret is not None and not section.has("client_id"):
        ctx.report(section.child(secret), section.values[secret], "give client_id with it")
    return fields.read_fields(section, UserOAuthConfig)


def _client_credentials(
    ctx: cp.Context, path: str, node: cp.Node
) -> ClientCredentialsConfig | None:
    """Exactly one of ``token_endpoint`` and ``issuer`` (whose metadata names it)."""
    section = cp.open_section(ctx, node, path, fields.keys(ClientCredentialsConfig))
    if section is None:
        return None
    if not (section.has("token_endpoint") or section.has("issuer")):
        ctx.report(path, node, "give token_endpoint, or issuer (its metadata names it)")
    elif section.has("token_endpoint") and section.has("issuer"):
        ctx.report(
            section.child("issuer"),
            section.values["issuer"],
            "give token_endpoint or issuer, not both",
        )
    return fields.read_fields(section, ClientCredentialsConfig)


@attrs.frozen
class BackendAuthConfig:
    """How aigw proves its right to call a backend, never with the user's token: at most
    one of ``client_credentials``, ``token_exchange`` and ``user_oauth`` (``backend_auth``
    checks), plus
    ``claims_to_headers``: claims of the verified token, as headers."""

    client_credentials: ClientCredentialsConfig | None = attrs.field(
        default=None, metadata=read_as(_client_credentials)
    )
    token_exchange: TokenExchangeConfig | None = attrs.field(
        default=None, metadata=read_as(section_of(TokenExchangeConfig))
    )
    user_oauth: UserOAuthConfig | None = attrs.field(default=None, metadata=read_as(_user_oauth))
    #: Claim (a dotted path into nested objects) -> header name.
    claims_to_headers: Mapping[str, str] = attrs.field(
        factory=dict, metadata=read_as(claims_headers)
    )


#: The credential modes of ``backends[].auth``, at most one.
_MODES = ("client_credentials", "token_exchange", "user_oauth")


def backend_auth(ctx: cp.Context, path: str, node: cp.Node) -> BackendAuthConfig | None:
    """At most one credential mode."""
    section = cp.open_section(ctx, node, path, fields.keys(BackendAuthConfig))
    if section is None:
        return None
    given = [mode for mode in _MODES if section.has(mode)]
    if len(given) > 1:
        ctx.report(
            section.child(given[1]),
            section.values[given[1]],
            f"give one of {', '.join(_MODES)}, not both {given[0]} and {given[1]}",
        )
    return fields.read_fields(section, BackendAuthConfig)
