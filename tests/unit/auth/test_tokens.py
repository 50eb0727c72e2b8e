"""JWT verification: one test per rule, each citing where the rule comes from."""

from __future__ import annotations

import re
from typing import Any

import jwt
from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from aigw.auth.errors import TokenRejected
from aigw.auth.jwks import IKeyStore, KeyStore
from aigw.auth.tokens import ITokenVerifier, JWTVerifier, looks_like_jwt
from aigw.principal import Principal
from tests.unit.auth.helpers import (
    AUDIENCE,
    EC_KEY,
    ED_KEY,
    ISSUER,
    NOW,
    RSA_KEY,
    RSA_KEY_2,
    FakeAuthorizationServer,
    auth_config,
    claims,
    jwks,
    mint,
    public_jwk,
)

#: A JWS compact serialization (RFC 7515 §7.1): the oracle for looks_like_jwt.
JWS_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

SECRET = b"0123456789abcdef0123456789abcdef"


class JWTTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeAuthorizationServer()
        self.server.serve(
            "/jwks",
            jwks(
                public_jwk(RSA_KEY, "rsa-1", alg="RS256"),
                public_jwk(EC_KEY, "ec-1"),
                public_jwk(ED_KEY, "ed-1"),
            ),
        )
        self.http = StubTreq(self.server)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.verifier = self.make()

    def make(self, **overrides: Any) -> JWTVerifier:
        config = auth_config(**overrides)
        keys = KeyStore(config, self.http, self.clock)
        keys.startService()
        self.http.flush()
        self.addCleanup(keys.stopService)
        return JWTVerifier(config, keys, self.clock)

    def accept(self, token: str, verifier: JWTVerifier | None = None) -> Principal:
        d = (verifier or self.verifier).verify(token)
        self.http.flush()
        return self.successResultOf(d)

    def reject(self, token: str, verifier: JWTVerifier | None = None) -> TokenRejected:
        d = (verifier or self.verifier).verify(token)
        self.http.flush()
        return self.failureResultOf(d, TokenRejected).value  # type: ignore[return-value]

    def assertReason(self, token: str, reason: str, verifier: JWTVerifier | None = None) -> None:
        rejected = self.reject(token, verifier)
        self.assertEqual(rejected.reason, reason, rejected.description)
        self.assertNotIn(token, str(rejected.args) + rejected.description)


class AcceptTests(JWTTestCase):
    def test_interfaces(self) -> None:
        self.assertTrue(verifyObject(ITokenVerifier, self.verifier))
        keys = KeyStore(auth_config(), self.http, self.clock)
        self.assertTrue(verifyObject(IKeyStore, keys))

    def test_valid_token(self) -> None:
        """RFC 9068 §2.2: the principal carries iss, sub, client_id, scope, jti, exp."""
        principal = self.accept(mint())
        self.assertEqual(principal.issuer, ISSUER)
        self.assertEqual(principal.subject, "user-1")
        self.assertEqual(principal.client_id, "client-1")
        self.assertEqual(principal.scopes, frozenset({"mcp:read", "mcp:write"}))
        self.assertEqual(principal.token_id, "token-1")
        self.assertEqual(principal.expires_at, NOW + 600)
        self.assertEqual(principal.claims["aud"], AUDIENCE)

    def test_ec_and_eddsa(self) -> None:
        """RFC 7518 §3.4 ES256 and RFC 8037 EdDSA keys verify their tokens."""
        self.accept(mint(key=EC_KEY, alg="ES256", kid="ec-1"))
        self.accept(mint(key=ED_KEY, alg="EdDSA", kid="ed-1"))

    def test_audience_list(self) -> None:
        """RFC 7519 §4.1.3: aud may be a list; one configured audience must be in it."""
        self.accept(mint(claims(aud=["https://other.example", AUDIENCE])))

    def test_scp_list_and_azp(self) -> None:
        """Scopes from ``scp`` (list) and client from ``azp`` when scope/client_id lack."""
        principal = self.accept(mint(claims(scope=None, client_id=None, scp=["a", "b"], azp="spa")))
        self.assertEqual(principal.scopes, frozenset({"a", "b"}))
        self.assertEqual(principal.client_id, "spa")

    def test_scp_string(self) -> None:
        principal = self.accept(mint(claims(scope=None, scp="a b")))
        self.assertEqual(principal.scopes, frozenset({"a", "b"}))

    def test_typ_variants(self) -> None:
        """RFC 9068 §4: ``at+jwt`` and ``application/at+jwt``; untyped unless required."""
        self.accept(mint(typ="application/at+jwt"))
        self.accept(mint(typ="AT+JWT"))
        self.accept(mint(typ=None))
        self.accept(mint(typ="JWT"))
        self.accept(mint(), self.make(require_access_token_type=True))

    def test_expired_within_leeway(self) -> None:
        """RFC 7519 §4.1.4 allows a small leeway for clock skew."""
        self.accept(mint(claims(exp=int(NOW) - 10)), self.make(leeway=30.0))

    def test_shared_secret(self) -> None:
        """HS256 verifies with the configured shared secret, and only with it."""
        verifier = self.make(algorithms=("HS256",), shared_secret=SECRET)
        self.accept(mint(key=SECRET, alg="HS256", kid=None), verifier)
        self.assertReason(mint(key=b"x" * 32, alg="HS256", kid=None), "bad_signature", verifier)

    def test_jwt_shape(self) -> None:
        self.assertTrue(looks_like_jwt(mint()))
        self.assertTrue(looks_like_jwt("a.b."))
        self.assertFalse(looks_like_jwt("opaque-token"))
        self.assertFalse(looks_like_jwt("a.b.c.d"))
        for not_jwt in (".b.c", "a..c", "a.b", "a.b=.c", "a.b.c+", "á.b.c", "a.b.c "):
            self.assertFalse(looks_like_jwt(not_jwt), not_jwt)

    @given(st.text(alphabet="aZ09-_.=+/ \n\x00é", max_size=12))
    def test_jwt_shape_is_rfc_7515s(self, token: str) -> None:
        """The same answer as RFC 7515 §7.1's shape written as a regular expression."""
        self.assertEqual(looks_like_jwt(token), JWS_SHAPE.fullmatch(token) is not None)


class RejectTests(JWTTestCase):
    def test_malformed(self) -> None:
        """RFC 7515 §7.1: a token that is not a JWS compact serialization."""
        self.assertReason("a.b.c", "malformed")
        signed = jwt.api_jws.encode(b"not json", RSA_KEY, "RS256", headers={"kid": "rsa-1"})
        self.assertReason(signed, "malformed")

    def test_bad_signature(self) -> None:
        """RFC 7515 §5.2: a token signed by another key under a known kid fails."""
        self.assertReason(mint(key=RSA_KEY_2), "bad_signature")

    def test_expired(self) -> None:
        """RFC 7519 §4.1.4: the token MUST NOT be accepted on or after exp (+ leeway)."""
        self.assertReason(mint(claims(exp=int(NOW) - 31)), "expired")

    def test_missing_exp(self) -> None:
        """RFC 9068 §2.2: exp is REQUIRED; a token without it is refused."""
        self.assertReason(mint(claims(exp=None)), "malformed")
        self.assertReason(mint(claims(exp="soon")), "malformed")

    def test_not_yet_valid(self) -> None:
        """RFC 7519 §4.1.5: not before nbf (- leeway)."""
        self.assertReason(mint(claims(nbf=int(NOW) + 31)), "not_yet_valid")

    def test_issued_in_the_future(self) -> None:
        """RFC 7519 §4.1.6: an iat beyond now + leeway means a bad clock or a forgery."""
        self.assertReason(mint(claims(iat=int(NOW) + 31)), "not_yet_valid")

    def test_wrong_issuer(self) -> None:
        """RFC 9068 §4, RFC 8725 §3.8: iss must equal the configured issuer exactly."""
        self.assertReason(mint(claims(iss=ISSUER + "/")), "wrong_issuer")
        self.assertReason(mint(claims(iss=None)), "wrong_issuer")

    def test_wrong_audience(self) -> None:
        """RFC 9068 §4, RFC 8707 §2, MCP "Token Audience Binding": aud must name us."""
        self.assertReason(mint(claims(aud="https://other.example/mcp")), "wrong_audience")
        self.assertReason(mint(claims(aud=None)), "wrong_audience")
        self.assertReason(mint(claims(aud=[])), "wrong_audience")

    def test_unknown_key(self) -> None:
        """A kid the issuer does not list (even after a refetch) fails closed."""
        self.assertReason(mint(kid="who"), "unknown_key")

    def test_wrong_type(self) -> None:
        """RFC 8725 §3.11: a JWT typed as something else (an ID token) is not an access token."""
        self.assertReason(mint(typ="id_token+jwt"), "wrong_type")
        self.assertReason(mint(typ="logout+jwt"), "wrong_type")

    def test_type_required(self) -> None:
        """RFC 9068 §4: with require_access_token_type, typ must be at+jwt."""
        verifier = self.make(require_access_token_type=True)
        self.assertReason(mint(typ="JWT"), "wrong_type", verifier)
        self.assertReason(mint(typ=None), "wrong_type", verifier)

    def test_alg_must_match_key(self) -> None:
        """RFC 8725 §3.1: a key declared RS256 does not verify PS256 tokens."""
        self.assertReason(mint(alg="PS256"), "unsupported_algorithm")
        self.assertReason(mint(key=EC_KEY, alg="ES256", kid="rsa-1"), "unsupported_algorithm")

    def test_no_subject(self) -> None:
        """RFC 9068 §2.2: sub is REQUIRED; a token naming neither sub nor client fails."""
        self.assertReason(mint(claims(sub=None, client_id=None)), "malformed")

    def test_hints_identify_without_token(self) -> None:
        """Refusals carry sub/client_id/jti for the log, never the token."""
        token = mint(claims(exp=int(NOW) - 100))
        rejected = self.reject(token)
        self.assertEqual(
            rejected.hints, {"sub": "user-1", "client_id": "client-1", "jti": "token-1"}
        )
