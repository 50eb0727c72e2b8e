"""Relaying the AS metadata for MCP 2025-03-26 clients (RFC 8414, OIDC Discovery)."""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.relay import AuthorizationServerMetadataRelay
from tests.unit.auth.helpers import ISSUER, FakeAuthorizationServer, auth_config

OAUTH = "/.well-known/oauth-authorization-server/tenant1"
OPENID = "/tenant1/.well-known/openid-configuration"


class RelayTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeAuthorizationServer()
        self.oauth = json.dumps({"issuer": ISSUER, "token_endpoint": "https://as/t"}).encode()
        self.openid = json.dumps({"issuer": ISSUER, "userinfo_endpoint": "https://as/u"}).encode()
        self.server.serve(OAUTH, self.oauth)
        self.server.serve(OPENID, self.openid)
        self.http = StubTreq(self.server)
        self.clock = Clock()
        self.relay = AuthorizationServerMetadataRelay(
            auth_config(metadata_refresh_interval=3600.0), self.http, self.clock
        )
        self.relay.startService()
        self.http.flush()
        self.addCleanup(self.relay.stopService)

    def test_serves_both_documents(self) -> None:
        """The bytes of both documents, served at the gateway's root well-known paths."""
        self.assertEqual(self.relay.kinds, ("oauth-authorization-server", "openid-configuration"))
        self.assertEqual(self.relay.document("oauth-authorization-server"), self.oauth)
        self.assertEqual(self.relay.document("/.well-known/oauth-authorization-server"), self.oauth)
        self.assertEqual(self.relay.document("/.well-known/openid-configuration"), self.openid)
        self.assertIsNone(self.relay.document("/other"))

    def test_refresh(self) -> None:
        newer = json.dumps({"issuer": ISSUER, "token_endpoint": "https://as/t2"}).encode()
        self.server.serve(OAUTH, newer)
        self.clock.advance(3599)
        self.assertEqual(self.relay.document("/.well-known/oauth-authorization-server"), self.oauth)
        self.clock.advance(1)
        self.http.flush()
        self.assertEqual(self.relay.document("/.well-known/oauth-authorization-server"), newer)

    def test_keeps_last_good_copy(self) -> None:
        self.server.serve(OAUTH, b"down", status=500)
        self.server.serve(OPENID, b"{not json")
        self.clock.advance(3600)
        self.http.flush()
        self.assertEqual(self.server.hits[OAUTH], 2)
        self.assertEqual(self.relay.document("/.well-known/oauth-authorization-server"), self.oauth)
        self.assertEqual(self.relay.document("/.well-known/openid-configuration"), self.openid)

    def test_failure_retries_sooner(self) -> None:
        self.server.serve(OAUTH, b"down", status=500)
        self.clock.advance(3600)
        self.clock.advance(60)
        self.http.flush()
        self.assertEqual(self.server.hits[OAUTH], 3)

    def test_other_issuer_not_relayed(self) -> None:
        """RFC 8414 §3.3: a document naming another issuer is never used."""
        self.server.serve(OAUTH, {"issuer": "https://evil.example"})
        relay = AuthorizationServerMetadataRelay(auth_config(), self.http, self.clock)
        relay.startService()
        self.http.flush()
        self.addCleanup(relay.stopService)
        self.assertIsNone(relay.document("/.well-known/oauth-authorization-server"))

    def test_stop(self) -> None:
        self.relay.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
