"""Who opened a ``user_oauth`` link: the browser's user, logged in at aigw's own issuer.

MCP 2025-11-25 client/elicitation, Security Considerations, "Phishing": the server
"MUST verify the identity of the user who opens the URL" and "MUST ensure that the user
who started the elicitation request ... is the same user who completes the
authorization flow", typically through its own authorization server, comparing its
``sub``; else a forwarded or phished link binds someone else's backend account to the
link owner's aigw identity.  So before the start
page sends the browser to the backend's authorization server, it logs the browser in
at ``auth.issuer``: OpenID Connect Core §3.1 (authorization code, ``scope=openid``,
``nonce``) with PKCE S256 (RFC 7636), the ``state`` sealed (``UserLinks.seal_login``).
The ID token is checked (§3.1.3.7: signature with the issuer's keys, the same key
store that checks access tokens; ``iss``, ``aud`` = our client, ``azp``, ``exp``,
``nonce``) and its ``iss`` and ``sub`` must be the link's user.  A user already logged
in there passes without typing anything (single sign-on).

aigw is a client of its own issuer: ``auth.browser_login`` (``client_id``,
``client_secret_file``), else registered once (RFC 7591) and kept in the store under
``LOGIN_CLIENT``, a name no backend can have (backend names are letters, digits,
``_`` and ``-``).  An issuer without OpenID Connect (no ``jwks_uri``, no ``id_token``)
makes the page answer 502 naming what is missing: the link is never honoured unchecked.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

import jwt
from twisted.internet.defer import CancelledError, Deferred

from aigw.auth.errors import TokenRejected
from aigw.auth.jwks import KEY_TYPE_FOR_ALGORITHM, KeySource
from aigw.config import AuthConfig
from aigw.discovery import discover_metadata
from aigw.httpjson import Clock, FetchFailed, HTTPClient
from aigw.store.api import RegisteredClient, Store
from aigw.upstream.flight import SingleFlight
from aigw.upstream.registration import RegistrationFailed, register
from aigw.upstream.token_endpoint import TokenEndpoint, TokenRequestFailed
from aigw.upstream.user_links import Grant, LoginState, UserLinks, pkce_pair

#: The store's name for aigw's registration at its own issuer (never a backend's name).
LOGIN_CLIENT = "@login"


class LoginFailed(Exception):
    """The browser's user is not (shown to be) the link's user; ``str()`` is for people.

    ``status``: 403 another user logged in, 400 a bad answer, 502 the issuer could not
    be asked or does not do OpenID Connect."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.status = status


class BrowserLogin:
    """Begins the login at ``auth.issuer`` and checks the user it answers with."""

    def __init__(
        self,
        auth: AuthConfig,
        keys: KeySource,
        store: Store,
        links: UserLinks,
        http: HTTPClient,
        clock: Clock,
    ) -> None:
        self._auth = auth
        self._keys = keys
        self._store = store
        self._links = links
        self._http = http
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._flight: SingleFlight[str, Any] = SingleFlight()

    @property
    def issuer(self) -> str:
        return self._auth.issuer

    async def begin(self, grant: Grant) -> str:
        """The authentication request URL (OpenID Connect Core §3.1.2.1)."""
        metadata = await self._discover()
        client = await self._client(metadata)
        verifier, challenge = pkce_pair()
        nonce = secrets.token_urlsafe(24)
        query = {
            "response_type": "code",
            "scope": "openid",
            "client_id": client.client_id,
            "redirect_uri": self._links.login_redirect_uri,
            "state": self._links.seal_login(grant, verifier, nonce, client.client_id),
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        endpoint = str(metadata["authorization_endpoint"])
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)

    async def complete(self, state: LoginState, code: str) -> None:
        """The code for an ID token, checked, whose user must be the link's: else raises."""
        metadata = await self._discover()
        client = await self._client(metadata)
        if client.client_id != state.client_id:
            raise LoginFailed("the login client changed since this began: start again", 400)
        endpoint = TokenEndpoint(
            self._http,
            self._clock,
            client_id=client.client_id,
            client_secret=client.client_secret,
            client_auth="client_secret_basic",
            timeout=self._auth.http_timeout,
            url=str(metadata["token_endpoint"]),
        )
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._links.login_redirect_uri,
            "code_verifier": state.verifier,
        }
        try:
            issued = await endpoint.request(form)
        except TokenRequestFailed as error:
            raise LoginFailed(str(error), 400 if error.refused else 502) from None
        if issued.id_token is None:
            raise LoginFailed(f"{self.issuer} answered no ID token (no OpenID Connect)", 502)
        claims = await self.verify(issued.id_token, client.client_id, state.nonce)
        grant = state.grant
        if claims["iss"] != grant.issuer or claims["sub"] != grant.subject:
            raise LoginFailed(
                "this link belongs to another user: open it from your own client", 403
            )

    async def verify(self, id_token: str, client_id: str, nonce: str) -> dict[str, Any]:
        """OpenID Connect Core §3.1.3.7: the ID token's signature and claims."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise LoginFailed("the ID token is not a JWT", 400) from None
        alg = header.get("alg")
        kid = header.get("kid")
        # Only the issuer's asymmetric keys (RFC 8725 §3.1); never "none", never jku/jwk.
        allowed = set(self._auth.algorithms) & KEY_TYPE_FOR_ALGORITHM.keys()
        if not isinstance(alg, str) or alg not in allowed:
            raise LoginFailed("the ID token's algorithm is not accepted", 400)
        if kid is not None and not isinstance(kid, str):
            raise LoginFailed("the ID token's kid is not a string", 400)
        try:
            key = await self._keys.get_key(kid, alg)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=[alg],
                audience=client_id,
                issuer=self.issuer,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except TokenRejected as error:
            # "unavailable": the issuer's keys cannot be had (down, or no jwks_uri).
            status = 502 if error.reason == "unavailable" else 400
            raise LoginFailed(f"the ID token's key: {error.description}", status) from None
        except jwt.PyJWTError as error:
            raise LoginFailed(f"the ID token is refused: {error}", 400) from None
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise LoginFailed("the ID token has no exp", 400)
        if expires + self._auth.leeway < self._clock.seconds():
            raise LoginFailed("the ID token has expired", 400)
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
            raise LoginFailed("the ID token was issued to another party (azp)", 400)
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
            str(claims["nonce"]), nonce
        ):
            # §3.1.3.7 item 11: the nonce of this login, so an ID token cannot be replayed.
            raise LoginFailed("the ID token's nonce is not this login's", 400)
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise LoginFailed("the ID token names no sub", 400)
        return claims

    async def _discover(self) -> dict[str, Any]:
        """The issuer's metadata, learnt once (a failure is not kept)."""
        if self._metadata is None:
            found: Deferred[dict[str, Any]] = self._flight.run("metadata", self._fetch)
            self._metadata = await found
        return self._metadata

    async def _fetch(self) -> dict[str, Any]:
        try:
            document = await discover_metadata(
                self._http, self._clock, self.issuer, self._auth.http_timeout
            )
        except FetchFailed as error:
            raise LoginFailed(f"aigw's authorization server: {error}", 502) from None
        for name in ("authorization_endpoint", "token_endpoint"):
            value = document.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise LoginFailed(f"{self.issuer}'s metadata names no {name}", 502)
        return document

    async def _client(self, metadata: dict[str, Any]) -> RegisteredClient:
        """``auth.browser_login``'s client, else the stored registration, else a new one."""
        configured = self._auth.browser_login
        if configured is not None:
            return RegisteredClient(
                LOGIN_CLIENT, self.issuer, configured.client_id, configured.client_secret
            )
        stored: RegisteredClient | None = await self._storing(
            self._store.get_client(LOGIN_CLIENT, self.issuer)
        )
        if stored is not None:
            return stored
        made: Deferred[RegisteredClient] = self._flight.run(
            "client", lambda: self._register(metadata)
        )
        return await made

    async def _register(self, metadata: dict[str, Any]) -> RegisteredClient:
        endpoint = metadata.get("registration_endpoint")
        if not isinstance(endpoint, str):
            raise LoginFailed(f"{self.issuer} offers no dynamic registration (RFC 7591)", 502)
        try:
            client = await register(
                self._http,
                self._clock,
                backend=LOGIN_CLIENT,
                issuer=self.issuer,
                endpoint=endpoint,
                redirect_uri=self._links.login_redirect_uri,
                scope=("openid",),
                time_limit=self._auth.http_timeout,
            )
        except RegistrationFailed as error:
            raise LoginFailed(f"aigw's authorization server: {error}", 502) from None
        await self._storing(self._store.put_client(client))
        return client

    @staticmethod
    async def _storing(work: Any) -> Any:
        try:
            return await work
        except CancelledError:
            raise
        except Exception as error:
            raise LoginFailed(f"the store failed: {type(error).__name__}", 502) from error
