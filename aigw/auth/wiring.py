"""Assembling the resource server from the config, for the daemon's service tree."""

from __future__ import annotations

from typing import Any

import treq
from treq.client import HTTPClient as TreqHTTPClient
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.web.client import Agent, HTTPConnectionPool

from aigw.auth.authenticator import Authenticator
from aigw.auth.jwks import KeyStore
from aigw.auth.relay import AuthorizationServerMetadataRelay
from aigw.auth.tokens import Verifier, build_verifier
from aigw.config import AuthConfig, Config
from aigw.events import GatewayObserver
from aigw.readiness import Readiness


class TreqClient:
    """treq over our own Agent and pool, with ``collect``: an ``HTTPClient``."""

    def __init__(self, reactor: Any, pool: HTTPConnectionPool, connect_timeout: float) -> None:
        agent: Any = Agent(reactor, connectTimeout=connect_timeout, pool=pool)
        self._client = TreqHTTPClient(agent)

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = self._client.request(method, url, **kwargs)
        return d

    def collect(self, response: Any, collector: Any) -> Deferred[None]:
        d: Deferred[None] = treq.collect(response, collector)
        return d


def build_authenticator(
    config: Config,
    reactor: Any,
    pool: HTTPConnectionPool,
    readiness: Readiness,
    observer: GatewayObserver | None = None,
) -> tuple[Authenticator, list[Service], AuthorizationServerMetadataRelay | None]:
    """The authenticator, the services it needs running, and the metadata relay.

    Under ``auth: none`` there is nothing to run: every request is ANONYMOUS.
    The key store registers a readiness check, so /readyz says "not ready"
    until the issuer's keys are loaded.  ``observer`` hears of every refusal.
    """
    auth = config.auth
    if auth is None:
        return Authenticator(None, observer=observer), [], None
    http = TreqClient(reactor, pool, auth.http_timeout)
    keys = KeyStore(auth, http, reactor)
    readiness.add("signing_keys", lambda: None if keys.ready else "signing keys not loaded")
    services: list[Service] = [keys]
    relay = None
    if auth.relay_authorization_server_metadata:
        relay = AuthorizationServerMetadataRelay(auth, http, reactor)
        services.append(relay)
    verifier = build_verifier(auth, keys, http, reactor)

    def rebuild(changed: AuthConfig) -> Verifier:
        return build_verifier(changed, keys, http, reactor)

    authenticator = Authenticator.from_config(config, verifier, observer, rebuild)
    return authenticator, services, relay
