"""From a request's Authorization header to a principal, or to the refusal to send.

Status codes follow RFC 6750 §3.1 and MCP Authorization 2025-11-25 ("Error
Handling"): 400 ``invalid_request`` for malformed requests, 401 for missing or
invalid tokens, 403 ``insufficient_scope``.  Every refusal carries the
``resource_metadata`` challenge so that clients can find the authorization
server, and every refusal is logged without the token and reported to the
gateway's observer (``AuthenticationRefused``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from twisted.logger import Logger

from aigw.auth.bearer import extract_bearer, refuse_query_token
from aigw.auth.challenge import ErrorCode, bearer_challenge
from aigw.auth.errors import TokenRejected
from aigw.auth.metadata import metadata_url
from aigw.auth.tokens import Verifier
from aigw.config import AuthConfig, Config
from aigw.events import AuthenticationRefused, GatewayObserver
from aigw.principal import ANONYMOUS, BearerToken, Principal


class AuthFailure(Exception):
    """The response to send instead of serving the request."""

    def __init__(
        self,
        status: int,
        www_authenticate: str,
        body: Mapping[str, str],
        retry_after: int | None = None,
    ) -> None:
        super().__init__(status, body.get("error"))
        self.status = status
        self.www_authenticate = www_authenticate
        self.body: dict[str, str] = dict(body)
        #: Seconds a client should wait before trying again (a 503: RFC 9110 §10.2.3).
        self.retry_after = retry_after


class Authenticator:
    """Checks the bearer token of each request to the MCP endpoint.

    With no verifier (``auth: none``) every request is ANONYMOUS.  ``observer``
    hears of every refusal.
    """

    log = Logger()

    def __init__(
        self,
        verifier: Verifier | None,
        resource_metadata: str = "",
        required_scopes: Iterable[str] = (),
        challenge_scopes: Iterable[str] | None = None,
        observer: GatewayObserver | None = None,
        rebuild: Callable[[AuthConfig], Verifier] | None = None,
        retry_after: float = 30.0,
    ) -> None:
        self._verifier = verifier
        #: When the authorization server cannot be asked: the next fetch of its keys
        #: after a failed one (``jwks_min_refresh_interval``).
        self._retry_after = max(1, math.ceil(retry_after))
        #: A verifier for other ``auth`` settings over the same signing keys (a reload).
        self._rebuild = rebuild
        self._observer = observer
        self._resource_metadata = resource_metadata
        self._required = tuple(required_scopes)
        self._challenge = self._required if challenge_scopes is None else tuple(challenge_scopes)

    @classmethod
    def from_config(
        cls,
        config: Config,
        verifier: Verifier | None,
        observer: GatewayObserver | None = None,
        rebuild: Callable[[AuthConfig], Verifier] | None = None,
    ) -> Authenticator:
        if config.auth is None or verifier is None:
            return cls(None, observer=observer)
        return cls(
            verifier,
            metadata_url(config),
            config.auth.required_scopes,
            challenge_scopes=_challenge_scopes(config),
            observer=observer,
            rebuild=rebuild,
            retry_after=config.auth.jwks_min_refresh_interval,
        )

    def follow(self, old: Config, new: Config) -> None:
        """A reload (``config/holder.py`` subscriber): a new verifier when ``auth``
        changed (what a reload may change of it: ``aigw/reload.py``), the new scopes
        in challenges.  Verifications under way finish with the old verifier."""
        if self._verifier is None or new.auth is None:
            return
        if new.auth != old.auth and self._rebuild is not None:
            self._verifier = self._rebuild(new.auth)
            self._required = new.auth.required_scopes
        self._challenge = _challenge_scopes(new)

    async def authenticate(
        self,
        authorization_headers: Sequence[bytes],
        query_args: Mapping[bytes, Sequence[bytes]],
    ) -> Principal:
        """The principal of the request; raises AuthFailure.

        A token in the verified-token cache comes back in a Deferred already fired,
        so this returns without suspending, on every request; awaited here rather than
        chained with callbacks, which ran Twisted's callback loop for it (three times
        the cost of the await: docs/performance.md, issue 15).
        """
        if self._verifier is None:
            return ANONYMOUS
        try:
            refuse_query_token(query_args)
            token = extract_bearer(authorization_headers)
        except TokenRejected as rejected:
            raise self._request_refusal(rejected) from None
        try:
            principal = await self._verifier.verify(token)
        except TokenRejected as rejected:
            raise self._token_refusal(rejected) from None
        return self._authorize(principal, token)

    def _authorize(self, principal: Principal, token: str) -> Principal:
        """The principal, holding its token for a token exchange upstream (principal.py
        says why that is safe), when it has the gateway-wide scopes."""
        if not principal.has_scopes(self._required):
            raise self.insufficient_scope(principal, self._required)
        return principal.holding(BearerToken(token))

    def insufficient_scope(self, principal: Principal, needed: Iterable[str]) -> AuthFailure:
        """The 403 for a principal lacking scopes the operation needs.

        The challenge names every scope the operation needs, the gateway-wide
        ones included, so a client stepping up asks for all of them at once
        (MCP Authorization, "Scope challenge handling"; RFC 6750 §3.1).
        """
        scopes = tuple(dict.fromkeys((*self._required, *needed)))
        missing = sorted(set(scopes) - principal.scopes)
        description = "the token lacks the scope(s): " + " ".join(missing)
        self._report_refusal(403, "insufficient_scope", _principal_hints(principal), missing)
        return self._failure(403, "insufficient_scope", description, scopes)

    def _request_refusal(self, rejected: TokenRejected) -> AuthFailure:
        """No token (401, no error code, RFC 6750 §3.1) or a malformed request (400)."""
        if rejected.reason == "missing":
            self._report_refusal(401, rejected.reason, rejected.hints)
            return self._failure(401, None, "an access token is required", self._challenge)
        self._report_refusal(400, rejected.reason, rejected.hints)
        return self._failure(400, "invalid_request", rejected.description, self._challenge)

    def _token_refusal(self, rejected: TokenRejected) -> AuthFailure:
        """401 ``invalid_token`` (RFC 6750 §3.1), or 503 when it cannot be checked.

        ``unavailable`` (the authorization server cannot be asked) fails closed
        with a 503 rather than a 401, so clients retry instead of throwing away
        a token that may be good; ``Retry-After`` says when (RFC 9110 §15.6.4).
        """
        if rejected.reason == "unavailable":
            self._report_refusal(503, rejected.reason, rejected.hints)
            failure = self._failure(503, None, rejected.description, self._challenge)
            failure.body["error"] = "temporarily_unavailable"
            failure.retry_after = self._retry_after
            return failure
        self._report_refusal(401, rejected.reason, rejected.hints)
        return self._failure(401, "invalid_token", rejected.description, self._challenge)

    def _failure(
        self, status: int, error: ErrorCode | None, description: str, scopes: Iterable[str]
    ) -> AuthFailure:
        challenge = bearer_challenge(self._resource_metadata, scopes, error, description)
        body = {"error": error or "unauthorized", "error_description": description}
        return AuthFailure(status, challenge, body)

    def _report_refusal(
        self, status: int, reason: str, hints: Mapping[str, str], missing: Any = None
    ) -> None:
        """Log the refusal (who, never the token) and tell the observer."""
        self.log.info(
            "Refused request: {reason} (HTTP {status})",
            status=status,
            reason=reason,
            sub=hints.get("sub"),
            client_id=hints.get("client_id"),
            jti=hints.get("jti"),
            missing_scopes=missing,
        )
        if self._observer is not None:
            self._observer.authentication_refused(AuthenticationRefused(status, reason))


def _principal_hints(principal: Principal) -> dict[str, str]:
    hints = {"sub": principal.subject}
    if principal.client_id is not None:
        hints["client_id"] = principal.client_id
    if principal.token_id is not None:
        hints["jti"] = principal.token_id
    return hints


def _challenge_scopes(config: Config) -> tuple[str, ...]:
    """A 401 asks for what the whole gateway needs: the gateway-wide scopes and every
    backend's, so one authorization covers every tool the user may have (the
    authorization server grants only those); MCP Authorization, "Scope Selection
    Strategy"."""
    assert config.auth is not None
    everything = (
        *config.auth.required_scopes,
        *(scope for backend in config.backends for scope in backend.required_scopes),
    )
    return tuple(dict.fromkeys(everything))
