"""Assembling the resource server from the config, for the daemon's service tree."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.web.client import HTTPConnectionPool

from aigw.auth.authenticator import Authenticator
from aigw.auth.jwks import KeyStore
from aigw.auth.relay import AuthorizationServerMetadataRelay
from aigw.auth.tokens import Verifier, build_verifier
from aigw.config import AuthConfig, Config
from aigw.events import GatewayObserver
from aigw.httpjson import TreqClient
from aigw.readiness import Readiness


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
    until the issuer's keys are loaded.  ``observer`` hears of every refusal, and
    of every fetch of the keys and introspection request.
    """
    auth = config.auth
    if auth is None:
        return Authenticator(None, observer=observer), [], None
    http = TreqClient(reactor, pool, auth.http_timeout)
    keys = KeyStore(auth, http, reactor, observer)
    readiness.add("signing_keys", lambda: None if keys.ready else "signing keys not loaded")
    services: list[Service] = [keys]
    relay = None
    if auth.relay_authorization_server_metadata:
        relay = AuthorizationServerMetadataRelay(auth, http, reactor)
        services.append(relay)
    verifier = build_verifier(auth, keys, http, reactor, observer)

    def rebuild(changed: AuthConfig) -> Verifier:
        return build_verifier(changed, keys, http, reactor, observer)

    authenticator = Authenticator.from_config(config, verifier, observer, rebuild)
    return authenticator, services, relay
