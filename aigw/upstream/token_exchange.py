"""A token for the backend, per user: OAuth 2.0 Token Exchange (RFC 8693).

The user's verified token is the ``subject_token`` (§2.1), sent to the configured
token endpoint and nowhere else; what goes upstream is the token the authorization
server issues for the backend, named as ``resource`` (RFC 8707) and/or ``audience``
(§2.1), so each backend sees a token meant for it alone (MCP Authorization, "Access
Token Privilege Restriction"; RFC 9700 §2.3).  Exchanged tokens are kept per user
token until they or the user's token expire, in a bounded LRU; a refused exchange fails
the request with a JSON-RPC error naming the backend, and never falls back to anything
else.
"""

from __future__ import annotations

import hashlib

from twisted.internet.defer import Deferred

from aigw.config import TokenExchangeConfig
from aigw.httpjson import Clock, HTTPClient
from aigw.lru import LRU
from aigw.principal import Principal, UserKey
from aigw.upstream.api import HeaderFields, UpstreamError
from aigw.upstream.client_credentials import EXPIRY_LEEWAY, bearer
from aigw.upstream.flight import SingleFlight
from aigw.upstream.token_endpoint import TokenEndpoint, TokenRequestFailed

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: RFC 8693 §3: what the subject token is (the user's access token).
SUBJECT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN

#: (user, SHA-256 of the user's token): never shared between users, nor between two
#: tokens of one user (their scopes may differ).
CacheKey = tuple[UserKey, bytes]


class _Exchanged:
    def __init__(self, fields: HeaderFields, expires_at: float) -> None:
        self.fields = fields
        self.expires_at = expires_at


class TokenExchange:
    """``Authorization: Bearer`` with a token exchanged for the requesting user's."""

    def __init__(
        self, backend: str, config: TokenExchangeConfig, http: HTTPClient, clock: Clock
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._endpoint = TokenEndpoint.of(config, http, clock)
        self._form = {
            "grant_type": GRANT_TYPE,
            "subject_token_type": SUBJECT_TOKEN_TYPE,
            "requested_token_type": config.requested_token_type,
        }
        if config.resource:
            self._form["resource"] = config.resource
        if config.audience:
            self._form["audience"] = config.audience
        if config.scope:
            self._form["scope"] = " ".join(config.scope)
        self._cache: LRU[CacheKey, _Exchanged] = LRU(config.cache_size)
        self._flight: SingleFlight[CacheKey, _Exchanged] = SingleFlight()
        #: How many exchanges were asked for (tests, metrics).
        self.exchanges = 0

    async def headers(self, principal: Principal | None) -> HeaderFields:
        if principal is None or principal.token is None:
            # The gateway's own housekeeping (no user), or ``auth: none``: there is no
            # user token to exchange, and no other token will do.
            raise UpstreamError(
                self._backend, "credentials", "token exchange needs the user's verified token"
            )
        token = principal.token.reveal()
        key = _key(principal, token)
        cached = self._cache.get(key)
        if cached is not None:
            if self._clock.seconds() < cached.expires_at:
                return cached.fields
            self._cache.pop(key)
        exchanged: Deferred[_Exchanged] = self._flight.run(
            key, lambda: self._exchange(key, token, principal.expires_at)
        )
        return (await exchanged).fields

    async def refused(self, principal: Principal | None) -> None:
        """The backend refused the exchanged token: the next request exchanges anew."""
        if principal is not None and principal.token is not None:
            self._cache.pop(_key(principal, principal.token.reveal()))

    async def _exchange(self, key: CacheKey, token: str, user_expires: float | None) -> _Exchanged:
        self.exchanges += 1
        form = {**self._form, "subject_token": token}
        try:
            issued = await self._endpoint.request(form)
        except TokenRequestFailed as error:
            raise UpstreamError(self._backend, "credentials", f"token exchange: {error}") from None
        now = self._clock.seconds()
        # Kept no longer than the user's token either: its expiry (or revocation, seen
        # when it expires) ends the exchanged token's use too.
        lifetime = issued.expires_in
        expires_at = now + lifetime - EXPIRY_LEEWAY if lifetime is not None else user_expires
        if expires_at is not None and user_expires is not None:
            expires_at = min(expires_at, user_expires)
        exchanged = _Exchanged(bearer(issued), expires_at if expires_at is not None else now)
        if now < exchanged.expires_at:
            self._cache.put(key, exchanged)
        return exchanged


def _key(principal: Principal, token: str) -> CacheKey:
    return (principal.user, hashlib.sha256(token.encode()).digest())
