"""The key store: discovery, refresh, unknown-kid refetch, bounds, failure modes.

The fake authorization server is served through StubTreq and time is a Clock,
so every test is synchronous and deterministic.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.errors import TokenRejected
from aigw.auth.jwks import KeyStore, cache_lifetime
from aigw.events import AuthServerFetched
from tests.fakes import RecordingObserver
from tests.unit.auth.helpers import (
    EC_KEY,
    ED_KEY,
    ISSUER,
    NOW,
    RSA_KEY,
    RSA_KEY_2,
    FakeAuthorizationServer,
    auth_config,
    jwks,
    public_jwk,
)

RSA_1 = public_jwk(RSA_KEY, "rsa-1", alg="RS256", use="sig")
RSA_2 = public_jwk(RSA_KEY_2, "rsa-2")


class KeyStoreTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeAuthorizationServer()
        self.server.serve("/jwks", jwks(RSA_1))
        self.http = StubTreq(self.server)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.events: list[dict[str, Any]] = []
        self.observer = RecordingObserver()

    def store(self, **overrides: Any) -> KeyStore:
        store = KeyStore(auth_config(**overrides), self.http, self.clock, self.observer)
        store.log = Logger(observer=self.events.append)
        store.startService()
        self.http.flush()
        self.addCleanup(store.stopService)
        return store

    def key(self, store: KeyStore, kid: str | None, alg: str = "RS256") -> Any:
        d = store.get_key(kid, alg)
        self.http.flush()
        return self.successResultOf(d)

    def rejected(self, store: KeyStore, kid: str | None, alg: str = "RS256") -> str:
        d = store.get_key(kid, alg)
        self.http.flush()
        return str(self.failureResultOf(d, TokenRejected).value.reason)

    def fetches(self) -> int:
        return self.server.hits["/jwks"]


class LoadingTests(KeyStoreTestCase):
    def test_start_loads_keys(self) -> None:
        """Keys are fetched at start; ``ready`` tells /readyz they are loaded."""
        store = self.store()
        self.assertTrue(store.ready)
        key = self.key(store, "rsa-1")
        self.assertEqual(key.public_numbers(), RSA_KEY.public_key().public_numbers())

    def test_not_ready_until_loaded(self) -> None:
        """``ready`` is False while no key set was ever loaded."""
        self.server.serve("/jwks", b"oops", status=500)
        self.assertFalse(self.store().ready)

    def test_only_symmetric_algorithms_needs_no_keys(self) -> None:
        """With only HS* allowed there is no key set to fetch, and the store is ready."""
        store = self.store(algorithms=("HS256",), shared_secret=b"s" * 32)
        self.assertTrue(store.ready)
        self.assertEqual(self.fetches(), 0)

    def test_discovers_jwks_uri_rfc8414_path_inserted(self) -> None:
        """RFC 8414 §3.1: for an issuer with a path the well-known string goes before it."""
        self.server.serve(
            "/.well-known/oauth-authorization-server/tenant1",
            {"issuer": ISSUER, "jwks_uri": "https://as.example/jwks"},
        )
        store = self.store(jwks_uri=None)
        self.assertTrue(store.ready)

    def test_discovers_jwks_uri_openid_fallback(self) -> None:
        """Without RFC 8414 metadata, OIDC Discovery §4 (appended well-known) is tried."""
        self.server.serve(
            "/tenant1/.well-known/openid-configuration",
            {"issuer": ISSUER, "jwks_uri": "https://as.example/jwks"},
        )
        store = self.store(jwks_uri=None)
        self.assertTrue(store.ready)
        self.assertEqual(self.server.hits["/.well-known/oauth-authorization-server/tenant1"], 1)

    def test_discovery_rejects_other_issuer(self) -> None:
        """RFC 8414 §3.3: metadata naming another issuer MUST NOT be used."""
        for path in (
            "/.well-known/oauth-authorization-server/tenant1",
            "/tenant1/.well-known/openid-configuration",
        ):
            document = {"issuer": "https://evil.example", "jwks_uri": "https://as.example/jwks"}
            self.server.serve(path, document)
        store = self.store(jwks_uri=None)
        self.assertFalse(store.ready)
        self.assertEqual(self.fetches(), 0)

    def test_unusable_keys_are_skipped_with_a_warning(self) -> None:
        """RFC 7517 §4.2/§4.4, RFC 8725 §3.1: wrong kty, use or alg keys are skipped."""
        self.server.serve(
            "/jwks",
            jwks(
                {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
                public_jwk(RSA_KEY_2, "enc", use="enc"),
                public_jwk(RSA_KEY_2, "hs", alg="HS256"),
                public_jwk(EC_KEY, "p256"),
                public_jwk(ED_KEY, "ed"),
                RSA_1,
            ),
        )
        store = self.store()
        self.assertEqual([k.kid for k in store.keys], ["p256", "ed", "rsa-1"])
        skipped = [e for e in self.events if e.get("log_level").name == "warn"]
        self.assertEqual([e["kid"] for e in skipped], ["sym", "enc", "hs"])

    def test_short_rsa_keys_are_skipped(self) -> None:
        """RFC 7518 §3.3: RSA keys MUST be 2048 bits or larger."""
        short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
        self.server.serve("/jwks", jwks(public_jwk(short, "short"), RSA_1))
        self.assertEqual([k.kid for k in self.store().keys], ["rsa-1"])

    def test_unchanged_keys_logged_once(self) -> None:
        self.store()
        self.clock.advance(300)
        loaded = [e for e in self.events if "kids" in e]
        self.assertEqual(len(loaded), 1)

    def test_private_keys_are_skipped(self) -> None:
        """A JWK with private material ('d') is a leak, never a verification key."""
        private = dict(RSA_2, d="AQAB")
        self.server.serve("/jwks", jwks(private, RSA_1))
        self.assertEqual([k.kid for k in self.store().keys], ["rsa-1"])

    def test_key_must_fit_algorithm(self) -> None:
        """RFC 8725 §3.1: the token's alg must match the key's alg and kty."""
        self.server.serve("/jwks", jwks(RSA_1, public_jwk(EC_KEY, "ec")))
        store = self.store()
        self.assertEqual(self.rejected(store, "rsa-1", "PS256"), "unsupported_algorithm")
        self.assertEqual(self.rejected(store, "ec", "ES384"), "unsupported_algorithm")
        self.assertEqual(self.rejected(store, "ec", "RS256"), "unsupported_algorithm")
        self.key(store, "ec", "ES256")

    def test_token_without_kid_uses_the_only_fitting_key(self) -> None:
        """No kid: the single key that fits the algorithm is used; several are ambiguous."""
        store = self.store()
        self.key(store, None)
        self.server.serve("/jwks", jwks(RSA_1, RSA_2))
        store.refresh()
        self.http.flush()
        self.assertEqual(self.rejected(store, None), "unknown_key")


class RefreshTests(KeyStoreTestCase):
    def test_periodic_refresh(self) -> None:
        """Keys are refetched every ``jwks_refresh_interval``."""
        self.store(jwks_refresh_interval=300.0)
        self.clock.advance(299)
        self.assertEqual(self.fetches(), 1)
        self.clock.advance(1)
        self.http.flush()
        self.assertEqual(self.fetches(), 2)

    def test_max_age_shortens_refresh(self) -> None:
        """RFC 9111 §5.2.2.1: a shorter Cache-Control max-age brings the refresh forward."""
        self.server.serve("/jwks", jwks(RSA_1), cache_control="public, max-age=60")
        self.store(jwks_refresh_interval=300.0)
        self.clock.advance(60)
        self.assertEqual(self.fetches(), 2)

    def test_max_age_floor(self) -> None:
        """``jwks_min_refresh_interval`` bounds how often a short max-age refetches."""
        self.server.serve("/jwks", jwks(RSA_1), cache_control="max-age=1")
        self.store(jwks_min_refresh_interval=30.0)
        self.clock.advance(29)
        self.assertEqual(self.fetches(), 1)
        self.clock.advance(1)
        self.assertEqual(self.fetches(), 2)

    def test_cache_lifetime_parsing(self) -> None:
        self.assertEqual(cache_lifetime("max-age=60, must-revalidate"), 60.0)
        self.assertEqual(cache_lifetime('private, max-age="7"'), 7.0)
        self.assertEqual(cache_lifetime("no-store"), 0.0)
        self.assertIsNone(cache_lifetime("public"))
        self.assertIsNone(cache_lifetime(None))

    def test_rotation_removes_keys(self) -> None:
        """A key the issuer no longer lists stops verifying at the next refresh."""
        store = self.store()
        self.server.serve("/jwks", jwks(RSA_2))
        self.clock.advance(300)
        self.assertEqual(self.rejected(store, "rsa-1"), "unknown_key")

    def test_stop_cancels_refresh(self) -> None:
        store = self.store()
        store.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class UnknownKidTests(KeyStoreTestCase):
    def test_unknown_kid_refetches_at_once(self) -> None:
        """A key rolled in since the last fetch is found by an immediate refetch."""
        store = self.store()
        self.server.serve("/jwks", jwks(RSA_1, RSA_2))
        self.key(store, "rsa-2")
        self.assertEqual(self.fetches(), 2)

    def test_unknown_kid_cooldown(self) -> None:
        """Within ``jwks_unknown_kid_cooldown`` an unknown kid fails without a fetch."""
        store = self.store(jwks_unknown_kid_cooldown=30.0)
        self.assertEqual(self.rejected(store, "nope"), "unknown_key")
        self.assertEqual(self.rejected(store, "nope-2"), "unknown_key")
        self.assertEqual(self.fetches(), 2)
        self.clock.advance(30)
        self.assertEqual(self.rejected(store, "nope-3"), "unknown_key")
        self.assertEqual(self.fetches(), 3)

    def test_single_flight(self) -> None:
        """However many tokens wait for a refetch, there is one fetch; all get its keys."""
        store = self.store()
        self.server.serve("/jwks", jwks(RSA_1, RSA_2))
        self.server.hold = True
        waiting = [store.get_key("rsa-2", "RS256") for _ in range(10)]
        self.http.flush()
        self.assertEqual(self.fetches(), 2)
        self.assertEqual(len(self.server.held), 1)
        for d in waiting:
            self.assertNoResult(d)
        self.server.release()
        self.http.flush()
        for d in waiting:
            self.successResultOf(d)
        self.assertEqual(self.fetches(), 2)

    def test_unknown_kid_joins_a_fetch_under_way(self) -> None:
        """Even within the cooldown, a fetch already running is waited for."""
        store = self.store()
        self.server.serve("/jwks", jwks(RSA_1, RSA_2))
        self.server.hold = True
        rejected = store.get_key("nope", "RS256")
        second = store.get_key("rsa-2", "RS256")
        self.server.release()
        self.http.flush()
        self.successResultOf(second)
        self.failureResultOf(rejected, TokenRejected)
        self.assertEqual(self.fetches(), 2)


class FailureTests(KeyStoreTestCase):
    def assertKeepsKeys(self, **answer: Any) -> KeyStore:
        store = self.store()
        body = answer.pop("body", b"")
        self.server.serve("/jwks", body, **answer)
        self.clock.advance(300)
        self.http.flush()
        self.assertEqual(self.fetches(), 2)
        self.key(store, "rsa-1")
        self.assertTrue(store.ready)
        self.assertEqual(self.rejected(store, "rsa-2"), "unknown_key")
        return store

    def test_as_down_keeps_last_good_keys(self) -> None:
        """An AS error keeps the last good keys; unknown kids still fail, closed."""
        self.assertKeepsKeys(body=b"down", status=503)

    def test_garbage_keeps_last_good_keys(self) -> None:
        """A body that is not JSON does not replace the keys."""
        self.assertKeepsKeys(body=b"<html>")

    def test_not_a_key_set_keeps_last_good_keys(self) -> None:
        """A JSON object without a 'keys' list does not replace the keys (RFC 7517 §5)."""
        self.assertKeepsKeys(body={"keys": "no"})

    def test_no_usable_key_keeps_last_good_keys(self) -> None:
        """A JWK Set with no usable key does not empty the store."""
        self.assertKeepsKeys(body=jwks({"kty": "oct"}))

    def test_failure_retries_at_the_floor(self) -> None:
        """After a failed fetch the next try comes at ``jwks_min_refresh_interval``."""
        self.server.serve("/jwks", b"down", status=500)
        self.store(jwks_min_refresh_interval=30.0)
        self.clock.advance(30)
        self.assertEqual(self.fetches(), 2)

    def test_never_loaded_is_unavailable(self) -> None:
        """With no key set ever loaded, tokens fail as ``unavailable``, not unknown."""
        self.server.serve("/jwks", b"down", status=500)
        store = self.store()
        self.assertEqual(self.rejected(store, "rsa-1"), "unavailable")

    def test_response_size_bound(self) -> None:
        """A body past ``jwks_max_bytes`` is aborted and ignored."""
        big = jwks(RSA_1, *[dict(RSA_2, kid=f"k{i}") for i in range(20)])
        self.server.serve("/jwks", big)
        store = self.store(jwks_max_bytes=len(big) - 1)
        self.assertFalse(store.ready)
        self.assertTrue(any("larger than" in str(e.get("why")) for e in self.events))

    def test_response_size_bound_without_length(self) -> None:
        """A chunked body is counted as it arrives and aborted past the bound."""
        big = jwks(RSA_1, *[dict(RSA_2, kid=f"k{i}") for i in range(20)])
        self.server.serve("/jwks", big, chunked=True)
        store = self.store(jwks_max_bytes=4096)
        self.assertFalse(store.ready)
        whys = [str(e.get("why")) for e in self.events]
        self.assertTrue(any("larger than 4096 bytes" in w for w in whys), whys)
        self.assertFalse(any("Content-Length" in w for w in whys))

    def test_each_fetch_is_reported(self) -> None:
        """The observer (the metrics) hears each fetch's outcome; not a stop's."""
        store = self.store()
        self.server.serve("/jwks", b"down", status=503)
        self.clock.advance(300)
        self.http.flush()
        self.server.hold = True
        self.clock.advance(30)
        store.stopService()
        self.assertEqual(
            self.observer.fetches,
            [AuthServerFetched("jwks", True), AuthServerFetched("jwks", False)],
        )

    def test_chunked_body_within_bound(self) -> None:
        self.server.serve("/jwks", jwks(RSA_1, RSA_2), chunked=True)
        self.assertTrue(self.store().ready)

    def test_key_count_bound(self) -> None:
        """A JWK Set with more than ``jwks_max_keys`` keys is refused whole."""
        self.server.serve("/jwks", jwks(RSA_1, RSA_2))
        store = self.store(jwks_max_keys=1)
        self.assertFalse(store.ready)

    def test_timeout(self) -> None:
        """A fetch hanging past ``http_timeout`` is cancelled; the keys stay."""
        store = self.store(http_timeout=10.0)
        self.server.hold = True
        self.clock.advance(300)
        self.assertEqual(len(self.server.held), 1)
        self.clock.advance(10)
        self.http.flush()
        self.key(store, "rsa-1")
        self.assertTrue(any("no answer within 10 s" in str(e.get("why")) for e in self.events))
