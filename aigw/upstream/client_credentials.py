"""The gateway's own token for a backend: the OAuth 2.0 client credentials grant.

RFC 6749 §4.4: aigw is the client, the backend the resource; the user's token plays
no part (MCP Authorization, "Access Token Privilege Restriction").  One token per
backend, asked for with the backend as ``resource`` (RFC 8707 §2) and/or
``audience`` so it is good there only (RFC 9700 §2.3), kept until shortly before it
expires and renewed ahead of that, one fetch at a time.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from aigw.config import ClientCredentialsConfig
from aigw.httpjson import Clock, HTTPClient
from aigw.principal import Principal
from aigw.upstream.api import HeaderFields, UpstreamError
from aigw.upstream.flight import SingleFlight
from aigw.upstream.token_endpoint import IssuedToken, TokenEndpoint, TokenRequestFailed

#: Renew once this share of a token's lifetime has passed...
RENEW_AT = 0.8
#: ...or this many seconds before it expires, whichever comes first.
RENEW_BEFORE = 30.0
#: A token is not sent in its last seconds: it could expire on the way.
EXPIRY_LEEWAY = 5.0
#: A token whose answer gave no ``expires_in`` (RFC 6749 §5.1 only RECOMMENDS it) is
#: asked for again after this long.
DEFAULT_LIFETIME = 300.0
#: After a failed fetch, requests are answered with that failure for this long
#: rather than each asking the token endpoint again.
RETRY_AFTER = 5.0


def bearer(token: IssuedToken) -> HeaderFields:
    """RFC 6750 §2.1."""
    return ((b"Authorization", b"Bearer " + token.access_token.encode("ascii")),)


class _Held:
    """A token as header fields, and when to renew and stop sending it."""

    def __init__(self, fields: HeaderFields, renew_at: float, expires_at: float) -> None:
        self.fields = fields
        self.renew_at = renew_at
        self.expires_at = expires_at


class ClientCredentials:
    """``Authorization: Bearer`` with the gateway's token for one backend, whoever asks."""

    log = Logger()

    def __init__(
        self, backend: str, config: ClientCredentialsConfig, http: HTTPClient, clock: Clock
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._endpoint = TokenEndpoint.of(config, http, clock)
        self._form = {"grant_type": "client_credentials"}
        if config.scope:
            self._form["scope"] = " ".join(config.scope)
        if config.resource:
            self._form["resource"] = config.resource
        if config.audience:
            self._form["audience"] = config.audience
        self._held: _Held | None = None
        self._failed: tuple[float, UpstreamError] | None = None
        self._flight: SingleFlight[None, _Held] = SingleFlight()
        #: How many times the token endpoint was asked (tests, metrics).
        self.fetches = 0

    async def headers(self, principal: Principal | None) -> HeaderFields:
        now = self._clock.seconds()
        held = self._held
        failed = self._failed is not None and now < self._failed[0]
        if held is not None and now < held.expires_at:
            if now >= held.renew_at and not failed and None not in self._flight:
                # Renewed in the background; this request goes with the token it has.
                self._flight.run(None, self._fetch).addErrback(lambda _: None)
            return held.fields
        if failed:
            assert self._failed is not None
            raise self._failed[1]
        fetched: Deferred[_Held] = self._flight.run(None, self._fetch)
        return (await fetched).fields

    async def refused(self, principal: Principal | None) -> None:
        """The backend refused the token (revoked, keys rotated): fetch a new one next."""
        self._held = None

    async def _fetch(self) -> _Held:
        self.fetches += 1
        try:
            token = await self._endpoint.request(self._form)
        except TokenRequestFailed as error:
            failure = UpstreamError(self._backend, "credentials", f"client credentials: {error}")
            self._failed = (self._clock.seconds() + RETRY_AFTER, failure)
            self.log.warn(
                "backend {backend}: no client credentials token: {detail}",
                backend=self._backend,
                detail=str(error),
            )
            raise failure from None
        now = self._clock.seconds()
        lifetime = DEFAULT_LIFETIME if token.expires_in is None else token.expires_in
        renew_in = max(0.0, min(lifetime * RENEW_AT, lifetime - RENEW_BEFORE))
        self._held = _Held(bearer(token), now + renew_in, now + lifetime - EXPIRY_LEEWAY)
        self._failed = None
        return self._held
