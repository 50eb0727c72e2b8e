"""RFC 7662 introspection, the verification cache, and the verifier dispatch."""

from __future__ import annotations

import base64
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.errors import TokenRejected
from aigw.auth.jwks import KeyStore
from aigw.auth.tokens import CachingVerifier, IntrospectionVerifier, build_verifier
from aigw.config import IntrospectionConfig
from aigw.events import AuthServerFetched
from aigw.principal import Principal
from tests.fakes import RecordingObserver
from tests.unit.auth.helpers import (
    AUDIENCE,
    ISSUER,
    NOW,
    RSA_KEY,
    FakeAuthorizationServer,
    auth_config,
    jwks,
    mint,
    public_jwk,
)

INTROSPECTION = IntrospectionConfig(
    endpoint="https://as.example/introspect",
    client_id="gateway id",
    client_secret="s3cr:t",
    timeout=5.0,
)


def active(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "active": True,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "scope": "mcp:read",
        "exp": int(NOW) + 60,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


class IntrospectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeAuthorizationServer()
        self.server.serve("/introspect", active())
        self.http = StubTreq(self.server)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.observer = RecordingObserver()
        self.verifier = IntrospectionVerifier(
            INTROSPECTION, auth_config(), self.http, self.clock, self.observer
        )

    def verify(self, value: str = "opaque-token") -> Deferred[Principal]:
        d = self.verifier.verify(value)
        self.http.flush()
        return d

    def reason(self) -> str:
        return str(self.failureResultOf(self.verify(), TokenRejected).value.reason)

    def test_active_token(self) -> None:
        """RFC 7662 §2.1: POST token + token_type_hint, authenticated as the client."""
        principal = self.successResultOf(self.verify())
        self.assertEqual(principal.subject, "user-1")
        self.assertEqual(principal.scopes, frozenset({"mcp:read"}))
        self.assertEqual(principal.expires_at, NOW + 60)
        request = self.server.requests[0]
        self.assertEqual(request.method, b"POST")
        self.assertEqual(
            self.server.forms[0],
            {b"token": [b"opaque-token"], b"token_type_hint": [b"access_token"]},
        )
        # RFC 6749 §2.3.1: client_secret_basic form-encodes id and secret.
        expected = b"Basic " + base64.b64encode(b"gateway+id:s3cr%3At")
        self.assertEqual(request.getHeader(b"authorization"), expected)

    def test_inactive(self) -> None:
        """RFC 7662 §2.2: ``active`` must be true."""
        self.server.serve("/introspect", {"active": False})
        self.assertEqual(self.reason(), "inactive")

    def test_active_must_be_true_not_truthy(self) -> None:
        self.server.serve("/introspect", active(active="true"))
        self.assertEqual(self.reason(), "inactive")

    def test_wrong_audience(self) -> None:
        """RFC 7662 §2.2 aud, when given, must name this resource (RFC 8707)."""
        self.server.serve("/introspect", active(aud="https://other.example"))
        self.assertEqual(self.reason(), "wrong_audience")

    def test_no_audience_accepted(self) -> None:
        """RFC 7662 §2.2: ``aud`` is optional; without it the token is the AS's word."""
        self.server.serve("/introspect", active(aud=None))
        self.assertEqual(self.successResultOf(self.verify()).subject, "user-1")

    def test_wrong_issuer(self) -> None:
        """iss, when given, must be the configured issuer."""
        self.server.serve("/introspect", active(iss="https://evil.example"))
        self.assertEqual(self.reason(), "wrong_issuer")

    def test_expired(self) -> None:
        """An exp in the past is refused even if the AS says active."""
        self.server.serve("/introspect", active(exp=int(NOW) - 100))
        self.assertEqual(self.reason(), "expired")

    def test_as_error_fails_closed(self) -> None:
        """RFC 7662 §4: an introspection failure never accepts the token."""
        self.server.serve("/introspect", b"oops", status=500)
        self.assertEqual(self.reason(), "unavailable")

    def test_garbage_fails_closed(self) -> None:
        self.server.serve("/introspect", b"[1, 2]")
        self.assertEqual(self.reason(), "unavailable")

    def test_response_size_bound(self) -> None:
        self.server.serve("/introspect", active(pad="x" * 300_000))
        self.assertEqual(self.reason(), "unavailable")

    def test_timeout_fails_closed(self) -> None:
        self.server.hold = True
        d = self.verify()
        self.assertNoResult(d)
        self.clock.advance(INTROSPECTION.timeout)
        self.assertEqual(self.failureResultOf(d, TokenRejected).value.reason, "unavailable")

    def test_each_request_is_reported_an_inactive_token_as_answered(self) -> None:
        """The observer (the metrics) hears whether the server answered, not the verdict."""
        self.successResultOf(self.verify())
        self.server.serve("/introspect", {"active": False})
        self.assertEqual(self.reason(), "inactive")
        self.server.serve("/introspect", b"oops", status=500)
        self.assertEqual(self.reason(), "unavailable")
        self.assertEqual(
            self.observer.fetches,
            [
                AuthServerFetched("introspection", True),
                AuthServerFetched("introspection", True),
                AuthServerFetched("introspection", False),
            ],
        )


class CountingVerifier:
    """Returns a fixed principal (or failure) and counts calls."""

    def __init__(self, expires_at: float | None = NOW + 60, error: bool = False) -> None:
        self.calls = 0
        self.expires_at = expires_at
        self.error = error

    def verify(self, token: str) -> Deferred[Principal]:
        self.calls += 1
        if self.error:
            return fail(TokenRejected("expired", "no"))
        return succeed(Principal(ISSUER, token, None, frozenset(), {}, None, self.expires_at))


class CachingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)

    def cache(
        self, wrapped: CountingVerifier, size: int = 10, max_age: float | None = None
    ) -> CachingVerifier:
        return CachingVerifier(wrapped, self.clock, size, max_age)

    def test_hit_avoids_reverifying(self) -> None:
        wrapped = CountingVerifier()
        cache = self.cache(wrapped)
        first = self.successResultOf(cache.verify("t"))
        second = self.successResultOf(cache.verify("t"))
        self.assertIs(first, second)
        self.assertEqual(wrapped.calls, 1)

    def test_entry_expires_at_exp(self) -> None:
        wrapped = CountingVerifier()
        cache = self.cache(wrapped)
        cache.verify("t")
        self.clock.advance(59)
        cache.verify("t")
        self.assertEqual(wrapped.calls, 1)
        self.clock.advance(1)
        cache.verify("t")
        self.assertEqual(wrapped.calls, 2)

    def test_max_age_bounds_an_entry_before_exp(self) -> None:
        """``auth.introspection.cache_ttl``: an answer is trusted ``max_age`` seconds,
        so a revocation at the authorization server takes effect that much later."""
        wrapped = CountingVerifier()  # exp in 60 s
        cache = self.cache(wrapped, max_age=10)
        cache.verify("t")
        self.clock.advance(9.9)
        cache.verify("t")
        self.assertEqual(wrapped.calls, 1)
        self.clock.advance(0.1)
        cache.verify("t")
        self.assertEqual(wrapped.calls, 2)

    def test_max_age_past_exp_stops_at_exp(self) -> None:
        wrapped = CountingVerifier()  # exp in 60 s
        cache = self.cache(wrapped, max_age=3600)
        cache.verify("t")
        self.clock.advance(60)
        cache.verify("t")
        self.assertEqual(wrapped.calls, 2)

    def test_max_age_zero_caches_nothing(self) -> None:
        wrapped = CountingVerifier()
        cache = self.cache(wrapped, max_age=0)
        cache.verify("t")
        cache.verify("t")
        self.assertEqual(wrapped.calls, 2)
        self.assertEqual(len(cache), 0)

    def test_never_caches_without_exp(self) -> None:
        wrapped = CountingVerifier(expires_at=None)
        cache = self.cache(wrapped)
        cache.verify("t")
        cache.verify("t")
        self.assertEqual(wrapped.calls, 2)
        self.assertEqual(len(cache), 0)

    def test_failures_not_cached(self) -> None:
        wrapped = CountingVerifier(error=True)
        cache = self.cache(wrapped)
        self.failureResultOf(cache.verify("t"), TokenRejected)
        self.failureResultOf(cache.verify("t"), TokenRejected)
        self.assertEqual(wrapped.calls, 2)

    def test_bounded_lru(self) -> None:
        wrapped = CountingVerifier()
        cache = self.cache(wrapped, size=2)
        cache.verify("a")
        cache.verify("b")
        cache.verify("a")  # a is now the most recent
        cache.verify("c")  # evicts b
        self.assertEqual(len(cache), 2)
        cache.verify("a")
        self.assertEqual(wrapped.calls, 3)
        cache.verify("b")
        self.assertEqual(wrapped.calls, 4)

    def test_size_zero_disables(self) -> None:
        wrapped = CountingVerifier()
        cache = self.cache(wrapped, size=0)
        cache.verify("t")
        cache.verify("t")
        self.assertEqual(wrapped.calls, 2)

    def test_keys_are_hashes(self) -> None:
        """The cache holds SHA-256 digests, never tokens."""
        cache = self.cache(CountingVerifier())
        cache.verify("secret-token")
        self.assertNotIn("secret-token", repr(cache._entries.keys()))


class BuildVerifierTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeAuthorizationServer()
        self.server.serve("/jwks", jwks(public_jwk(RSA_KEY, "rsa-1")))
        self.server.serve("/introspect", active())
        self.http = StubTreq(self.server)
        self.clock = Clock()
        self.clock.advance(NOW)

    def build(self, **overrides: Any) -> Any:
        config = auth_config(**overrides)
        keys = KeyStore(config, self.http, self.clock)
        keys.startService()
        self.http.flush()
        self.addCleanup(keys.stopService)
        return build_verifier(config, keys, self.http, self.clock)

    def verify(self, verifier: Any, token: str) -> Deferred[Principal]:
        d: Deferred[Principal] = verifier.verify(token)
        self.http.flush()
        return d

    def test_jwt_goes_to_jwt_verifier(self) -> None:
        verifier = self.build(introspection=INTROSPECTION)
        self.successResultOf(self.verify(verifier, mint()))
        self.assertEqual(self.server.hits["/introspect"], 0)

    def test_opaque_goes_to_introspection(self) -> None:
        self.server.serve("/introspect", active(exp=int(NOW) + 3600))
        verifier = self.build(introspection=INTROSPECTION)
        self.successResultOf(self.verify(verifier, "opaque"))
        self.successResultOf(self.verify(verifier, "opaque"))
        self.assertEqual(self.server.hits["/introspect"], 1)  # cached
        # For cache_ttl (60 s by default), not until the token's exp (an hour away):
        # a token revoked meanwhile is refused within a minute (RFC 7662 section 4).
        self.clock.advance(INTROSPECTION.cache_ttl)
        self.successResultOf(self.verify(verifier, "opaque"))
        self.assertEqual(self.server.hits["/introspect"], 2)

    def test_opaque_without_introspection_is_malformed(self) -> None:
        verifier = self.build()
        failure = self.failureResultOf(self.verify(verifier, "opaque"), TokenRejected)
        self.assertEqual(failure.value.reason, "malformed")

    def test_jwt_cached(self) -> None:
        verifier = self.build()
        token = mint()
        first = self.successResultOf(self.verify(verifier, token))
        self.assertIs(self.successResultOf(self.verify(verifier, token)), first)
