"""Hostile token claims: every odd value is a refusal, never a crash or a pass.

Each test names the rule it checks and cites where the rule comes from.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.errors import TokenRejected
from aigw.auth.jwks import KeyStore
from aigw.auth.tokens import IntrospectionVerifier, JWTVerifier, build_verifier
from aigw.config import IntrospectionConfig
from tests.unit.auth.helpers import (
    AUDIENCE,
    ISSUER,
    NOW,
    RSA_KEY,
    RSA_KEY_2,
    FakeAuthorizationServer,
    auth_config,
    claims,
    jwks,
    public_jwk,
)

INTROSPECTION = IntrospectionConfig(
    endpoint="https://as.example/introspect",
    client_id="gateway",
    client_secret="secret",
    timeout=5.0,
)


def signed(payload: dict[str, Any]) -> str:
    """An RS256 access token whose payload is serialised as given (NaN, huge ints)."""
    body = json.dumps(payload, allow_nan=True).encode()
    return jwt.api_jws.encode(body, RSA_KEY, "RS256", headers={"kid": "rsa-1", "typ": "at+jwt"})


class HostileJWTClaims(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeAuthorizationServer()
        self.server.serve("/jwks", jwks(public_jwk(RSA_KEY, "rsa-1", alg="RS256")))
        self.http = StubTreq(self.server)
        self.clock = Clock()
        self.clock.advance(NOW)
        config = auth_config()
        keys = KeyStore(config, self.http, self.clock)
        keys.startService()
        self.http.flush()
        self.addCleanup(keys.stopService)
        self.verifier = JWTVerifier(config, keys, self.clock)

    def assertMalformed(self, token: str) -> None:
        d = self.verifier.verify(token)
        self.http.flush()
        rejected = self.failureResultOf(d, TokenRejected).value
        self.assertEqual(rejected.reason, "malformed")  # type: ignore[attr-defined]

    def test_huge_integer_exp_is_refused_not_a_crash(self) -> None:
        """RFC 7519 §4.1.4 / §2 NumericDate: an exp no float can hold is malformed.

        Before the fix ``float(10**400)`` raised OverflowError out of the
        verifier (a 500 with a traceback instead of a 401).
        """
        self.assertMalformed(signed(claims(exp=10**400)))

    def test_huge_integer_nbf_is_refused_not_a_crash(self) -> None:
        """RFC 7519 §4.1.5: an unrepresentable nbf is malformed, not an OverflowError."""
        self.assertMalformed(signed(claims(nbf=10**400)))

    def test_huge_integer_iat_is_refused_not_a_crash(self) -> None:
        """RFC 7519 §4.1.6: an unrepresentable iat is malformed, not an OverflowError."""
        self.assertMalformed(signed(claims(iat=-(10**400))))

    def test_nan_exp_fails_closed(self) -> None:
        """RFC 8725 §3 (fail closed) / RFC 7519 §4.1.4: a NaN exp never expires.

        ``now >= nan`` is always False, so a token with ``exp: NaN`` was
        accepted for ever; NumericDate is a finite number.
        """
        self.assertMalformed(signed(claims(exp=float("nan"))))

    def test_infinite_exp_fails_closed(self) -> None:
        """RFC 7519 §2 NumericDate is a finite number of seconds: Infinity is malformed."""
        self.assertMalformed(signed(claims(exp=float("inf"))))

    def test_nan_nbf_fails_closed(self) -> None:
        """RFC 7519 §4.1.5: ``now < nan`` is False, so a NaN nbf would never hold a token back."""
        self.assertMalformed(signed(claims(nbf=float("nan"))))


class HostileIntrospectionAnswers(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeAuthorizationServer()
        self.http = StubTreq(self.server)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.verifier = IntrospectionVerifier(INTROSPECTION, auth_config(), self.http, self.clock)

    def answer(self, body: bytes) -> TokenRejected:
        self.server.serve("/introspect", body)
        d = self.verifier.verify("opaque-token")
        self.http.flush()
        return self.failureResultOf(d, TokenRejected).value  # type: ignore[return-value]

    def answer_claims(self, **extra: Any) -> bytes:
        values = {"active": True, "iss": ISSUER, "aud": AUDIENCE, "sub": "u", **extra}
        return json.dumps(values, allow_nan=True).encode()

    def test_huge_exp_from_introspection_is_refused(self) -> None:
        """RFC 7662 §2.2 exp is a NumericDate; an unrepresentable one is refused, not a crash."""
        rejected = self.answer(self.answer_claims(exp=10**400))
        self.assertEqual(rejected.reason, "malformed")

    def test_nan_exp_from_introspection_fails_closed(self) -> None:
        """RFC 7662 §4: the resource server fails closed; NaN exp never expires."""
        rejected = self.answer(self.answer_claims(exp=float("nan")))
        self.assertEqual(rejected.reason, "malformed")

    def test_string_true_active_is_inactive(self) -> None:
        """RFC 7662 §2.2: ``active`` is a boolean; the string "true" is not active."""
        rejected = self.answer(self.answer_claims(active="true"))
        self.assertEqual(rejected.reason, "inactive")

    def test_missing_active_is_inactive(self) -> None:
        """RFC 7662 §2.2: ``active`` is REQUIRED; without it the token is not accepted."""
        rejected = self.answer(b'{"iss": "%s", "sub": "u"}' % ISSUER.encode())
        self.assertEqual(rejected.reason, "inactive")

    def test_deeply_nested_answer_is_unavailable_not_a_crash(self) -> None:
        """RFC 7662 §4: an unreadable answer (RecursionError in json) fails closed as 503."""
        rejected = self.answer(b"[" * 200_000 + b"]" * 200_000)
        self.assertEqual(rejected.reason, "unavailable")


class CachedNaNToken(SynchronousTestCase):
    def test_nan_exp_token_is_not_accepted_on_second_use(self) -> None:
        """RFC 8725 §3: the cache must not turn a fail-open into a remembered pass."""
        server = FakeAuthorizationServer()
        server.serve("/jwks", jwks(public_jwk(RSA_KEY, "rsa-1", alg="RS256")))
        http = StubTreq(server)
        clock = Clock()
        clock.advance(NOW)
        config = auth_config()
        keys = KeyStore(config, http, clock)
        keys.startService()
        http.flush()
        self.addCleanup(keys.stopService)
        verifier = build_verifier(config, keys, http, clock)
        token = signed(claims(exp=float("nan")))
        for _ in range(2):
            d = verifier.verify(token)
            http.flush()
            self.failureResultOf(d, TokenRejected)


class HostileKeySets(SynchronousTestCase):
    """Keys come only from the issuer's JWK Set, and only asymmetric ones (regressions)."""

    def verifier_with(self, *keys: dict[str, Any]) -> tuple[JWTVerifier, StubTreq]:
        server = FakeAuthorizationServer()
        server.serve("/jwks", jwks(*keys))
        http = StubTreq(server)
        clock = Clock()
        clock.advance(NOW)
        config = auth_config()
        store = KeyStore(config, http, clock)
        store.startService()
        http.flush()
        self.addCleanup(store.stopService)
        return JWTVerifier(config, store, clock), http

    def reason(self, verifier: JWTVerifier, http: StubTreq, token: str) -> str:
        d = verifier.verify(token)
        http.flush()
        return str(self.failureResultOf(d, TokenRejected).value.reason)  # type: ignore[attr-defined]

    def test_symmetric_jwk_is_never_a_verification_key(self) -> None:
        """RFC 8725 §3.1/§2.1: a ``kty: oct`` JWK in the set must not let anyone who
        read the (public) JWKS mint HS256 tokens with it."""
        secret = b"attacker-known-secret-attacker-known"
        oct_jwk = {"kty": "oct", "kid": "oct-1", "k": b64url(secret), "alg": "HS256"}
        verifier, http = self.verifier_with(public_jwk(RSA_KEY, "rsa-1"), oct_jwk)
        token = jwt.encode(claims(), secret, "HS256", headers={"kid": "oct-1", "typ": "at+jwt"})
        self.assertEqual(self.reason(verifier, http, token), "unsupported_algorithm")

    def test_duplicate_kid_does_not_let_the_second_key_in_silently(self) -> None:
        """RFC 7517 §4.5: kids SHOULD be unique; with two keys under one kid, a token
        signed by the other key fails closed (bad signature), never verifies by accident
        and never raises."""
        verifier, http = self.verifier_with(
            public_jwk(RSA_KEY_2, "dup", alg="RS256"), public_jwk(RSA_KEY, "dup", alg="RS256")
        )
        token = jwt.encode(claims(), RSA_KEY, "RS256", headers={"kid": "dup", "typ": "at+jwt"})
        self.assertEqual(self.reason(verifier, http, token), "bad_signature")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class OneBadKeySpoilsNothing(SynchronousTestCase):
    """RFC 7517 §5: implementations SHOULD ignore JWKs they cannot use, not the whole set."""

    def load(self, *keys: Any) -> KeyStore:
        server = FakeAuthorizationServer()
        server.serve("/jwks", json.dumps({"keys": list(keys)}).encode())
        http = StubTreq(server)
        clock = Clock()
        clock.advance(NOW)
        store = KeyStore(auth_config(), http, clock)
        store.startService()
        http.flush()
        self.addCleanup(store.stopService)
        return store

    def test_jwk_members_of_the_wrong_json_type_are_skipped_one_by_one(self) -> None:
        """A list where RFC 7517 §4.1/§4.4 and RFC 7518 §6.2.1.1 want a string (kty,
        alg, crv) raised TypeError (unhashable) out of the parser, so the whole set was
        refused and the gateway never became ready; only that key must be skipped."""
        good = public_jwk(RSA_KEY, "rsa-1", alg="RS256")
        for odd in (
            {"kty": ["RSA"], "kid": "odd"},
            {"kty": "EC", "crv": ["P-256"], "kid": "odd"},
            {"kty": "RSA", "alg": ["RS256"], "kid": "odd"},
            {"kty": {"RSA": 1}, "kid": "odd"},
        ):
            store = self.load(odd, good)
            self.assertTrue(store.ready, odd)
            self.assertEqual([k.kid for k in store.keys], ["rsa-1"], odd)
