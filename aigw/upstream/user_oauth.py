"""What a request to a ``user_oauth`` backend carries: the requesting user's own token there.

Keyed by the user's issuer and ``sub`` at aigw and the backend (``store.api.UserToken``).
A user without one, or whose token the backend refuses (401) or whose refresh is
refused, gets ``AuthorizationRequired``: the gateway answers it with MCP's
URL-elicitation-required error (2025-11-25 client/elicitation), whose URL is aigw's
start endpoint, bound to that user and backend (``user_links.py``).  The token is
renewed with its refresh token shortly before it expires, one refresh at a time per
user.  The user's token at aigw never goes upstream, and the backend's token never
goes to the MCP client (client/elicitation, "Security Considerations").
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from aigw.httpjson import Clock
from aigw.principal import Principal
from aigw.store.api import UserToken
from aigw.upstream.api import AuthorizationRequired, HeaderFields, UpstreamError
from aigw.upstream.client_credentials import EXPIRY_LEEWAY, RENEW_BEFORE
from aigw.upstream.flight import SingleFlight
from aigw.upstream.token_endpoint import TokenRequestFailed
from aigw.upstream.user_authorization import UserAuthorization


class UserOAuth:
    """``Authorization: Bearer`` with the requesting user's own token at the backend."""

    log = Logger()

    def __init__(self, authorization: UserAuthorization, clock: Clock) -> None:
        self._authorization = authorization
        self._store = authorization.store
        self._backend = authorization.backend
        self._clock = clock
        self._flight: SingleFlight[tuple[str, str], UserToken | None] = SingleFlight()

    async def headers(self, principal: Principal | None) -> HeaderFields:
        if principal is None or not principal.subject:
            # The gateway's own housekeeping: nobody's token may be used for it.
            raise UpstreamError(self._backend, "credentials", "no user to act for")
        token = await self._stored(principal.issuer, principal.subject)
        if token is None:
            raise self.required(principal, "not authorized at this backend yet")
        expires_at = token.expires_at
        now = self._clock.seconds()
        if expires_at is not None and now >= expires_at - RENEW_BEFORE:
            due = token
            renewing: Deferred[UserToken | None] = self._flight.run(
                principal.user, lambda: self._refresh(due)
            )
            try:
                renewed = await renewing
            except UpstreamError:
                # The authorization server could not be asked: the token goes while it
                # lasts, then the request fails naming the backend (-32015).
                if now >= expires_at - EXPIRY_LEEWAY:
                    raise
                renewed = token
            if renewed is None:
                raise self.required(principal, "the authorization at this backend expired")
            token = renewed
        return ((b"Authorization", b"Bearer " + token.access_token.encode("ascii")),)

    async def refused(self, principal: Principal | None) -> None:
        """The backend answered 401 to this user's token: forgotten, authorize again."""
        if principal is None or not principal.subject:
            return
        await self._forget(principal.issuer, principal.subject)
        raise self.required(principal, "the backend refused the stored token")

    def required(self, principal: Principal, why: str) -> AuthorizationRequired:
        """The error that sends this user to authorize aigw at the backend."""
        links = self._authorization.links
        ttl = self._authorization.config.link_ttl
        elicitation_id, url = links.mint(principal, self._backend, ttl)
        expires_at = self._clock.seconds() + ttl
        return AuthorizationRequired(self._backend, elicitation_id, url, why, expires_at)

    async def _refresh(self, token: UserToken) -> UserToken | None:
        """The renewed token; None when there is none to be had (the token forgotten
        if the server refused the refresh); UpstreamError when the server could not
        be asked."""
        # Another process may have renewed it already (a rotated refresh token is
        # single-use): the stored row is the one to renew.
        stored = await self._stored(token.issuer, token.subject)
        if stored is None:
            return None
        if stored.expires_at is None or self._clock.seconds() < stored.expires_at - RENEW_BEFORE:
            return stored
        if stored.refresh_token is None:
            return None
        try:
            return await self._authorization.refresh(stored)
        except TokenRequestFailed as error:
            self.log.info(
                "backend {backend}: refresh for {sub} failed: {detail}",
                backend=self._backend,
                sub=token.subject,
                detail=str(error),
            )
            if not error.refused:
                raise UpstreamError(self._backend, "credentials", f"refresh: {error}") from None
        await self._forget(token.issuer, token.subject)
        return None

    async def _stored(self, issuer: str, subject: str) -> UserToken | None:
        """The user's stored token; a store that fails fails the request (-32015)."""
        try:
            return await self._store.get_user_token(issuer, subject, self._backend)
        except CancelledError:
            raise
        except Exception as error:
            self.log.failure("token store failed", backend=self._backend)
            raise UpstreamError(
                self._backend, "credentials", f"token store: {type(error).__name__}"
            ) from None

    async def _forget(self, issuer: str, subject: str) -> None:
        await self._store.revoke_user_tokens(subject=subject, backend=self._backend, issuer=issuer)
