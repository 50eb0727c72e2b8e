"""The assembled resource server over HTTP on a memory network (treq, Agent, pool)."""

from __future__ import annotations

from twisted.internet.defer import maybeDeferred
from twisted.trial.unittest import SynchronousTestCase
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
from tests.unit.memory import MemoryNetwork, run


class LiveTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.network = MemoryNetwork()

    @run
    async def test_discovery_keys_and_verification(self) -> None:
        reactor = self.network.reactor
        server = FakeAuthorizationServer()
        port = self.network.serve(Site(server, reactor=reactor))
        base = f"http://127.0.0.1:{port}"
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
            self.addCleanup(lambda s=service: self.network.run(maybeDeferred(s.stopService)))
        await self.network.settle()  # discovery, keys and metadata fetched
        self.assertTrue(readiness.report()[0])
        assert relay is not None
        self.assertIsNotNone(relay.document("openid-configuration"))
        now = int(reactor.seconds())
        token = mint(claims(iss=issuer, iat=now, exp=now + 60))
        principal = await authenticator.authenticate([b"Bearer " + token.encode()], {})
        self.assertEqual(principal.subject, "user-1")
        with self.assertRaises(AuthFailure) as caught:
            await authenticator.authenticate([b"Bearer " + mint(kid="other").encode()], {})
        self.assertEqual(caught.exception.status, 401)
