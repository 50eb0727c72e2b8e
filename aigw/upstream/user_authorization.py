"""aigw as the OAuth client of one backend, for each of its users (``auth.user_oauth``).

The backend's authorization server is learnt from the backend (RFC 9728,
``protected_resource.py``), once per process; the client is the configured one, or
the one registered earlier (the store), or registered now (RFC 7591,
``registration.py``).  A user's authorization is the authorization code grant with
PKCE S256 (RFC 6749 §4.1, RFC 7636) and ``resource`` = the backend's URL (RFC 8707
§2; MCP 2025-11-25 "Resource Parameter Implementation"), begun at aigw's start
endpoint and completed at its callback (``web/upstream_oauth.py``); the token is
stored per user and backend, and renewed with its refresh token (RFC 6749 §6).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlencode

from twisted.internet.defer import CancelledError, Deferred
from twisted.web.client import HTTPConnectionPool

from aigw.config import BackendConfig, UserOAuthConfig
from aigw.httpjson import Clock, HTTPClient, TreqClient
from aigw.store.api import RegisteredClient, Store, UserToken
from aigw.upstream.flight import SingleFlight
from aigw.upstream.protected_resource import AuthorizationServer, DiscoveryFailed, discover
from aigw.upstream.registration import RegistrationFailed, register
from aigw.upstream.token_endpoint import (
    IssuedToken,
    TokenEndpoint,
    TokenRequestFailed,
    server_client,
)
from aigw.upstream.user_links import Grant, State, UserLinks, pkce_pair

T = TypeVar("T")

#: A registered secret this close to its expiry (RFC 7591 §3.2.1) is registered again.
SECRET_LEEWAY = 60.0


class AuthorizationFailed(Exception):
    """No authorization could be begun or completed; ``str()`` is safe to show the user.

    ``refused``: the authorization server said no (a 400 to the user); else it could
    not be reached or understood (a 502)."""

    def __init__(self, detail: str, *, refused: bool = False) -> None:
        super().__init__(detail)
        self.refused = refused


class UserAuthorization:
    """One backend's OAuth client side: its server, its client, begin, complete, refresh."""

    def __init__(
        self,
        backend: str,
        resource: str,
        config: UserOAuthConfig,
        store: Store,
        links: UserLinks,
        http: HTTPClient,
        clock: Clock,
        resource_http: HTTPClient | None = None,
    ) -> None:
        """``http`` asks the authorization server; ``resource_http`` the backend itself
        (its 401 and protected resource metadata), ``http`` when not given: each with
        the trust the config gives it (:func:`build_user_authorization`)."""
        self.backend = backend
        self.resource = resource
        self.config = config
        self.store = store
        self.links = links
        self._http = http
        self._resource_http = http if resource_http is None else resource_http
        self._clock = clock
        self._server: AuthorizationServer | None = None
        self._flight: SingleFlight[str, Any] = SingleFlight()

    async def server(self) -> AuthorizationServer:
        """The backend's authorization server, learnt once (a failure is not kept)."""
        if self._server is None:
            found: Deferred[AuthorizationServer] = self._flight.run("server", self._discover)
            self._server = await found
        return self._server

    async def _discover(self) -> AuthorizationServer:
        try:
            return await discover(
                self._resource_http, self._http, self._clock, self.resource, self.config.timeout
            )
        except DiscoveryFailed as error:
            raise AuthorizationFailed(f"backend {self.backend!r}: {error}") from None

    async def client(self, server: AuthorizationServer) -> RegisteredClient:
        """The configured client, else the stored registration, else a new one."""
        if self.config.client_id is not None:
            return RegisteredClient(
                self.backend, server.issuer, self.config.client_id, self.config.client_secret
            )
        stored = await _storing(self.store.get_client(self.backend, server.issuer))
        if stored is not None and not self._secret_expired(stored):
            return stored
        made: Deferred[RegisteredClient] = self._flight.run(
            "client", lambda: self._register(server)
        )
        return await made

    def _secret_expired(self, client: RegisteredClient) -> bool:
        expires = client.client_secret_expires_at
        return (
            bool(expires)
            and expires is not None
            and expires - SECRET_LEEWAY < self._clock.seconds()
        )

    async def _register(self, server: AuthorizationServer) -> RegisteredClient:
        if server.registration_endpoint is None:
            raise AuthorizationFailed(
                f"backend {self.backend!r}: {server.issuer} offers no dynamic registration; "
                "configure auth.user_oauth.client_id"
            )
        try:
            client = await register(
                self._http,
                self._clock,
                backend=self.backend,
                issuer=server.issuer,
                endpoint=server.registration_endpoint,
                redirect_uri=self.links.redirect_uri,
                scope=self._scope(server),
                time_limit=self.config.timeout,
            )
        except RegistrationFailed as error:
            raise AuthorizationFailed(f"backend {self.backend!r}: {error}") from None
        await _storing(self.store.put_client(client))
        return client

    def _scope(self, server: AuthorizationServer) -> tuple[str, ...]:
        return self.config.scope or server.resource_scopes

    async def begin(self, grant: Grant) -> str:
        """The authorization request URL the user is sent to (RFC 6749 §4.1.1)."""
        server = await self.server()
        client = await self.client(server)
        verifier, challenge = pkce_pair()
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": self.links.redirect_uri,
            "state": self.links.seal_state(grant, verifier, client.client_id, server.issuer),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": self.resource,
        }
        scope = self._scope(server)
        if scope:
            query["scope"] = " ".join(scope)
        separator = "&" if "?" in server.authorization_endpoint else "?"
        return server.authorization_endpoint + separator + urlencode(query)

    async def complete(self, state: State, code: str) -> UserToken:
        """RFC 6749 §4.1.3: the code (with the PKCE verifier) for a token, stored."""
        server = await self.server()
        if state.authorization_server != server.issuer:
            raise AuthorizationFailed("the backend's authorization server changed: start again")
        client = await self.client(server)
        if client.client_id != state.client_id:
            raise AuthorizationFailed("the client changed since this began: start again")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.links.redirect_uri,
            "code_verifier": state.verifier,
            "resource": self.resource,
        }
        try:
            issued = await self._endpoint(client, server.token_endpoint).request(form)
        except TokenRequestFailed as error:
            raise AuthorizationFailed(str(error), refused=error.refused) from None
        grant = state.grant
        token = self._token(grant.issuer, grant.subject, issued, None, server, client)
        try:
            await self.store.put_user_token(token)
        except CancelledError:
            raise
        except Exception as error:
            raise AuthorizationFailed(
                f"the token could not be stored: {type(error).__name__}"
            ) from error
        return token

    async def refresh(self, token: UserToken) -> UserToken:
        """RFC 6749 §6: a new access token (and perhaps a new refresh token, which then
        replaces the old one: OAuth 2.1 rotation), stored; TokenRequestFailed if not."""
        assert token.refresh_token is not None
        try:
            server = await self.server()
            client = await self.client(server)
        except AuthorizationFailed as error:
            raise TokenRequestFailed(str(error)) from None
        if client.client_id != token.client_id:
            raise TokenRequestFailed("the token was issued to another client", refused=True)
        form = {
            "grant_type": "refresh_token",
            "refresh_token": token.refresh_token,
            "resource": self.resource,
        }
        issued = await self._endpoint(client, token.token_endpoint).request(form)
        fresh = self._token(
            token.issuer, token.subject, issued, token.refresh_token, server, client
        )
        try:
            await _storing(self.store.put_user_token(fresh))
        except AuthorizationFailed as error:
            raise TokenRequestFailed(str(error)) from None
        return fresh

    def _endpoint(self, client: RegisteredClient, url: str) -> TokenEndpoint:
        return TokenEndpoint(
            self._http,
            self._clock,
            client_id=client.client_id,
            client_secret=client.client_secret,
            client_auth=self.config.client_auth,
            timeout=self.config.timeout,
            url=url,
        )

    def _token(
        self,
        issuer: str,
        subject: str,
        issued: IssuedToken,
        refresh_token: str | None,
        server: AuthorizationServer,
        client: RegisteredClient,
    ) -> UserToken:
        now = self._clock.seconds()
        return UserToken(
            issuer=issuer,
            subject=subject,
            backend=self.backend,
            access_token=issued.access_token,
            refresh_token=issued.refresh_token or refresh_token,
            expires_at=None if issued.expires_in is None else now + issued.expires_in,
            scope=issued.scope,
            token_endpoint=server.token_endpoint,
            client_id=client.client_id,
            updated_at=now,
        )


async def _storing(work: Awaitable[T]) -> T:
    """A store call whose failure (disk, database) fails the authorization, not the page."""
    try:
        return await work
    except CancelledError:
        raise
    except Exception as error:
        detail = f"the token store failed: {type(error).__name__}"
        raise AuthorizationFailed(detail) from error


def build_user_authorization(
    backend: BackendConfig, store: Store, links: UserLinks, reactor: Any
) -> UserAuthorization:
    """The OAuth client side of a ``user_oauth`` backend, with treq clients of its own."""
    assert backend.auth is not None
    assert backend.auth.user_oauth is not None
    assert backend.url is not None
    to_backend, to_server = oauth_clients(backend, reactor)
    config = backend.auth.user_oauth
    return UserAuthorization(
        backend.name, backend.url, config, store, links, to_server, reactor, to_backend
    )


def oauth_clients(backend: BackendConfig, reactor: Any) -> tuple[HTTPClient, HTTPClient]:
    """The clients that ask a ``user_oauth`` backend and its authorization server (a
    connection per request: discovery, registration and tokens are asked for seldom).

    Trust: the backend (its 401, its RFC 9728 metadata) as the backend's connection
    trusts it (``ca_file``); its authorization server by ``auth.user_oauth.ca_file``,
    the backend's when absent (one private CA usually signs both).  A certificate that
    fails fails the authorization: no fallback to other roots."""
    assert backend.auth is not None
    assert backend.auth.user_oauth is not None
    config = backend.auth.user_oauth
    pool = HTTPConnectionPool(reactor, persistent=False)
    to_backend = TreqClient(reactor, pool, config.timeout, backend.ca_file)
    to_server = server_client(backend, config.ca_file, config.timeout, reactor, pool)
    return to_backend, to_server
