"""What a request to a backend carries to authenticate the gateway, built from its config.

Static ``headers`` (and ``headers_file``), then at most one ``Authorization`` from
``auth`` (the gateway's own token, RFC 6749 §4.4, one exchanged for the user's, RFC
8693, or the user's own token at the backend, ``user_oauth.py``), then
``claims_to_headers``.  Never the user's own token: the client's
``Authorization`` is not among what the upstream client sends (``client.py``), and
``Principal.token`` is read by the token exchange alone, to send to the token
endpoint (MCP Authorization, "Access Token Privilege Restriction").

The token endpoint clients and claim headers are imported only for a backend with an
``auth``: a gateway of backends without one never loads them (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aigw.config import BackendConfig
from aigw.httpjson import HTTPClient
from aigw.principal import Principal
from aigw.upstream.api import HeaderFields, UpstreamCredentials

if TYPE_CHECKING:
    from aigw.upstream.claims import ClaimsHeaders
    from aigw.upstream.user_authorization import UserAuthorization


class StaticHeaders:
    """The backend's configured ``headers`` (and ``headers_file``), the same on every request.

    Encoded once: the hot path only hands the same tuple on.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._fields: HeaderFields = tuple(
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        )

    async def headers(self, principal: Principal | None) -> HeaderFields:
        return self._fields

    async def refused(self, principal: Principal | None) -> None:
        """Static headers are what they are: nothing to drop."""


class BackendCredentials:
    """Static headers, then the token of ``authorization`` if any, then claim headers."""

    def __init__(
        self,
        static: StaticHeaders,
        authorization: UpstreamCredentials | None = None,
        claims: ClaimsHeaders | None = None,
    ) -> None:
        self._static = static
        self._authorization = authorization
        self._claims = claims

    async def headers(self, principal: Principal | None) -> HeaderFields:
        fields = [*await self._static.headers(principal)]
        if self._authorization is not None:
            fields.extend(await self._authorization.headers(principal))
        if self._claims is not None:
            fields.extend(self._claims.fields(principal))
        return fields

    async def refused(self, principal: Principal | None) -> None:
        if self._authorization is not None:
            await self._authorization.refused(principal)


def build_credentials(
    config: BackendConfig,
    reactor: Any,
    http: HTTPClient | None = None,
    user_authorization: UserAuthorization | None = None,
) -> UpstreamCredentials:
    """The credentials ``config`` asks for; ``http`` reaches token endpoints (default:
    ``token_endpoint.token_server_client``, with the trust the mode's ``ca_file`` gives);
    ``user_authorization`` is the backend's OAuth client side when it is ``user_oauth``."""
    static = StaticHeaders(config.headers)
    auth = config.auth
    if auth is None:
        return static
    from aigw.upstream.claims import ClaimsHeaders
    from aigw.upstream.client_credentials import ClientCredentials
    from aigw.upstream.token_endpoint import token_server_client
    from aigw.upstream.token_exchange import TokenExchange
    from aigw.upstream.user_oauth import UserOAuth

    if http is None:
        http = token_server_client(config, reactor)
    authorization: UpstreamCredentials | None = None
    if auth.client_credentials is not None:
        assert http is not None
        authorization = ClientCredentials(config.name, auth.client_credentials, http, reactor)
    elif auth.token_exchange is not None:
        assert http is not None
        authorization = TokenExchange(config.name, auth.token_exchange, http, reactor)
    elif auth.user_oauth is not None:
        if user_authorization is None:
            raise ValueError(f"backend {config.name!r}: user_oauth needs the token store")
        authorization = UserOAuth(user_authorization, reactor)
    claims = ClaimsHeaders(config.name, auth.claims_to_headers) if auth.claims_to_headers else None
    return BackendCredentials(static, authorization, claims)
