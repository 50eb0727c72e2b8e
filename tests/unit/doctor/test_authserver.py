"""The authorization server checks against a fake AS served through StubTreq."""

from __future__ import annotations

from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.doctor.authserver import check_authorization_server
from aigw.doctor.findings import Finding
from tests.unit.auth.helpers import (
    EC_KEY,
    ISSUER,
    JWKS_URI,
    RSA_KEY,
    FakeAuthorizationServer,
    auth_config,
    gateway_config,
    jwks,
    public_jwk,
)

METADATA_PATH = "/.well-known/oauth-authorization-server/tenant1"
OPENID_PATH = "/tenant1/.well-known/openid-configuration"


def metadata(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "issuer": ISSUER,
        "jwks_uri": JWKS_URI,
        "registration_endpoint": "https://as.example/reg",
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "mcp:tools"],
    }
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not None}


class AuthorizationServerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeAuthorizationServer()
        self.server.serve(METADATA_PATH, metadata())
        self.server.serve("/jwks", jwks(public_jwk(RSA_KEY, "k1", alg="RS256", use="sig")))
        self.auth = auth_config(jwks_uri=None, scopes_supported=("mcp:tools",))

    def findings(self, **auth: Any) -> dict[str, Finding]:
        http = StubTreq(self.server)
        config = gateway_config(attrs.evolve(self.auth, **auth))
        d = ensureDeferred(check_authorization_server(config, http, Clock()))
        for _ in range(5):
            http.flush()
        return {f.check: f for f in self.successResultOf(d)}

    def verdicts(self, **auth: Any) -> dict[str, str]:
        return {check: f.verdict for check, f in self.findings(**auth).items()}

    def test_healthy(self) -> None:
        self.assertEqual(
            self.verdicts(),
            {
                "issuer metadata": "ok",
                "jwks": "ok",
                "registration": "ok",
                "pkce": "ok",
                "scopes": "ok",
            },
        )

    def test_openid_fallback(self) -> None:
        del self.server.answers[METADATA_PATH]
        self.server.serve(OPENID_PATH, metadata())
        found = self.findings()["issuer metadata"]
        self.assertEqual(found.verdict, "ok")
        self.assertIn("openid-configuration", found.seen)

    def test_issuer_mismatch_shows_both(self) -> None:
        self.server.serve(METADATA_PATH, metadata(issuer=ISSUER + "/"))
        found = self.findings()["issuer metadata"]
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn(repr(ISSUER + "/"), found.seen)
        self.assertIn(repr(ISSUER), found.seen)

    def test_no_metadata(self) -> None:
        del self.server.answers[METADATA_PATH]
        verdicts = self.verdicts()
        self.assertEqual(verdicts["issuer metadata"], "FAIL")
        self.assertEqual(verdicts["jwks"], "FAIL")
        self.assertEqual(verdicts["pkce"], "warn")

    def test_no_registration_endpoint(self) -> None:
        self.server.serve(METADATA_PATH, metadata(registration_endpoint=None))
        found = self.findings()["registration"]
        self.assertEqual(found.verdict, "warn")
        self.assertIn("pre-registered client id", found.fix or "")

    def test_missing_s256(self) -> None:
        self.server.serve(METADATA_PATH, metadata(code_challenge_methods_supported=["plain"]))
        self.assertEqual(self.verdicts()["pkce"], "FAIL")
        self.server.serve(METADATA_PATH, metadata(code_challenge_methods_supported=None))
        self.assertIn("absent", self.findings()["pkce"].seen)

    def test_missing_scope(self) -> None:
        found = self.findings(scopes_supported=("mcp:tools", "mcp:admin"))["scopes"]
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("mcp:admin", found.seen)
        self.assertNotIn("mcp:tools,", found.seen)

    def test_unlisted_scopes_warn(self) -> None:
        self.server.serve(METADATA_PATH, metadata(scopes_supported=None))
        self.assertEqual(self.verdicts()["scopes"], "warn")

    def test_jwks_only_symmetric_key(self) -> None:
        self.server.serve("/jwks", jwks({"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2s"}))
        found = self.findings()["jwks"]
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("private key material", found.seen)  # an oct key's k is its secret
        self.server.serve("/jwks", jwks({"kty": "oct", "kid": "h", "alg": "HS256"}))
        self.assertIn("no key usable", self.findings()["jwks"].seen)

    def test_jwks_private_key(self) -> None:
        private = public_jwk(RSA_KEY, "k1", alg="RS256", d="secret")
        self.server.serve("/jwks", jwks(private))
        found = self.findings()["jwks"]
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("'k1'", found.seen)

    def test_jwks_key_of_another_algorithm(self) -> None:
        self.server.serve("/jwks", jwks(public_jwk(EC_KEY, "e1", alg="ES256")))
        self.assertEqual(self.verdicts(algorithms=("RS256",))["jwks"], "FAIL")
        self.assertEqual(self.verdicts(algorithms=("ES256",))["jwks"], "ok")

    def test_jwks_unreachable(self) -> None:
        self.server.serve("/jwks", b"oops", status=500)
        found = self.findings()["jwks"]
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("HTTP 500", found.seen)

    def test_auth_none(self) -> None:
        http = StubTreq(self.server)
        d = ensureDeferred(check_authorization_server(gateway_config(None), http, Clock()))
        (found,) = self.successResultOf(d)
        self.assertEqual((found.verdict, found.check), ("warn", "auth"))
