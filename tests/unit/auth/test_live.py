"""The assembled resource server over real HTTP on loopback (treq, Agent, pool)."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.server import Site

from aigw.auth.authenticator import AuthFailure
from aigw.auth.wiring import build_authenticator
from aigw.readiness import Readiness
from tests.unit.auth.helpers import (
    AUDIENCE,
    RSA_KEY,
    FakeAuthorizationServer,
    auth_config,
    claims,
    gateway_config,
    jwks,
    mint,
    public_jwk,
)


class LiveTests(TestCase):
    timeout = 20

    async def test_discovery_keys_and_verification(self) -> None:
        server = FakeAuthorizationServer()
        port = reactor.listenTCP(0, Site(server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}"
        issuer = base + "/tenant1"
        server.serve(
            "/.well-known/oauth-authorization-server/tenant1",
            {"issuer": issuer, "jwks_uri": base + "/jwks"},
        )
        server.serve("/tenant1/.well-known/openid-configuration", {"issuer": issuer})
        server.serve("/jwks", jwks(public_jwk(RSA_KEY, "rsa-1")), chunked=True)
        pool = HTTPConnectionPool(reactor, persistent=False)
        readiness = Readiness()
        auth = auth_config(issuer=issuer, jwks_uri=None, audiences=(AUDIENCE,))
        authenticator, services, relay = build_authenticator(
            gateway_config(auth), reactor, pool, readiness
        )
        for service in services:
            service.startService()
            self.addCleanup(service.stopService)
        while (
            not readiness.report()[0]
            or relay is None
            or relay.document("openid-configuration") is None
        ):
            d: Deferred[None] = Deferred()
            reactor.callLater(0.01, d.callback, None)
            await d
        now = int(reactor.seconds())
        token = mint(claims(iss=issuer, iat=now, exp=now + 60))
        principal = await authenticator.authenticate([b"Bearer " + token.encode()], {})
        self.assertEqual(principal.subject, "user-1")
        with self.assertRaises(AuthFailure) as caught:
            await authenticator.authenticate([b"Bearer " + mint(kid="other").encode()], {})
        self.assertEqual(caught.exception.status, 401)
