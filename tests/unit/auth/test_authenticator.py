"""The refusal each failure turns into (RFC 6750 §3.1, MCP Authorization "Error Handling")."""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.authenticator import Authenticator, AuthFailure
from aigw.auth.errors import TokenRejected
from aigw.config import BackendConfig
from aigw.events import AuthenticationRefused
from aigw.principal import ANONYMOUS, Principal
from tests.fakes import RecordingObserver
from tests.unit.auth.helpers import ISSUER, auth_config, gateway_config

META = "https://gw.example/.well-known/oauth-protected-resource/mcp"
TOKEN = "secret.token.value"


def principal(*scopes: str) -> Principal:
    return Principal(ISSUER, "user-1", "client-1", frozenset(scopes), {}, "jti-1", None)


class FakeVerifier:
    def __init__(self, result: Principal | TokenRejected) -> None:
        self.result = result
        self.tokens: list[str] = []

    def verify(self, token: str) -> Deferred[Principal]:
        self.tokens.append(token)
        if isinstance(self.result, TokenRejected):
            return fail(self.result)
        return succeed(self.result)


class AuthenticatorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []

    def make(
        self, result: Principal | TokenRejected, required: tuple[str, ...] = ("mcp",)
    ) -> Authenticator:
        config = gateway_config(auth_config(required_scopes=required))
        self.verifier = FakeVerifier(result)
        authenticator = Authenticator.from_config(config, self.verifier)
        authenticator.log = Logger(observer=self.events.append)
        return authenticator

    def refuse(
        self,
        authenticator: Authenticator,
        headers: list[bytes],
        query: dict[bytes, list[bytes]] | None = None,
    ) -> AuthFailure:
        d = ensureDeferred(authenticator.authenticate(headers, query or {}))
        return self.failureResultOf(d, AuthFailure).value  # type: ignore[return-value]

    def test_auth_none(self) -> None:
        """``auth: none``: every request is the anonymous principal."""
        authenticator = Authenticator.from_config(gateway_config(None), None)
        self.assertIs(
            self.successResultOf(ensureDeferred(authenticator.authenticate([], {}))), ANONYMOUS
        )

    def test_accepted(self) -> None:
        authenticator = self.make(principal("mcp", "x"))
        got = self.successResultOf(
            ensureDeferred(authenticator.authenticate([b"Bearer " + TOKEN.encode()], {}))
        )
        self.assertEqual(got.subject, "user-1")
        self.assertEqual(self.verifier.tokens, [TOKEN])

    def test_the_principal_holds_its_token_for_a_token_exchange_and_never_shows_it(self) -> None:
        authenticator = self.make(principal("mcp"))
        got = self.successResultOf(
            ensureDeferred(authenticator.authenticate([b"Bearer " + TOKEN.encode()], {}))
        )
        assert got.token is not None
        self.assertEqual(got.token.reveal(), TOKEN)
        self.assertEqual(got, principal("mcp"))  # the same user, whichever token proved it
        for shown in (repr(got), str(got), repr(got.token), str(got.token), f"{got.token}"):
            self.assertNotIn(TOKEN, shown)
        with self.assertRaises(TypeError):
            json.dumps({"token": got.token})
        self.assertNotIn(TOKEN, repr(attrs.asdict(got)))

    def test_holding_the_token_keeps_every_other_fact(self) -> None:
        """``Principal.holding`` builds the principal field by field: every field but the
        token is the verified one's."""
        verified = Principal(
            ISSUER, "alice", "app", frozenset({"mcp"}), {"sub": "alice"}, "jti-1", 1e9
        )
        got = self.successResultOf(
            ensureDeferred(self.make(verified).authenticate([b"Bearer " + TOKEN.encode()], {}))
        )
        fields = [f.name for f in attrs.fields(Principal) if f.name != "token"]
        self.assertEqual([getattr(got, f) for f in fields], [getattr(verified, f) for f in fields])
        # the fields Principal.holding passes on, the token included: a new one goes there too
        self.assertEqual(len(attrs.fields(Principal)), 8)

    def test_missing(self) -> None:
        """RFC 6750 §3.1, MCP "Protected Resource Metadata Discovery": 401 + challenge."""
        failure = self.refuse(self.make(principal()), [])
        self.assertEqual(failure.status, 401)
        self.assertEqual(
            failure.www_authenticate, f'Bearer resource_metadata="{META}", scope="mcp"'
        )
        self.assertEqual(failure.body["error"], "unauthorized")

    def test_malformed_header(self) -> None:
        """RFC 6750 §3.1: a malformed request is 400 invalid_request."""
        failure = self.refuse(self.make(principal()), [b"Bearer a b"])
        self.assertEqual(failure.status, 400)
        self.assertIn('error="invalid_request"', failure.www_authenticate)
        self.assertEqual(failure.body["error"], "invalid_request")

    def test_query_token(self) -> None:
        """MCP "Token Requirements": a token in the query string is a 400, not used."""
        failure = self.refuse(self.make(principal()), [], {b"access_token": [TOKEN.encode()]})
        self.assertEqual(failure.status, 400)
        self.assertEqual(self.verifier.tokens, [])

    def test_invalid_token(self) -> None:
        """RFC 6750 §3.1: an expired/invalid token is 401 invalid_token with a description."""
        rejected = TokenRejected("expired", "the token has expired", {"sub": "user-1", "jti": "j"})
        failure = self.refuse(self.make(rejected), [b"Bearer " + TOKEN.encode()])
        self.assertEqual(failure.status, 401)
        self.assertEqual(
            failure.www_authenticate,
            f'Bearer resource_metadata="{META}", scope="mcp", error="invalid_token", '
            'error_description="the token has expired"',
        )
        self.assertEqual(
            failure.body, {"error": "invalid_token", "error_description": "the token has expired"}
        )

    def test_malformed_token_is_invalid_token(self) -> None:
        """RFC 6750 §3.1: a malformed *token* is invalid_token, not invalid_request."""
        failure = self.refuse(
            self.make(TokenRejected("malformed", "not a JWT")), [b"Bearer " + TOKEN.encode()]
        )
        self.assertEqual(failure.status, 401)
        self.assertEqual(failure.body["error"], "invalid_token")

    def test_unavailable(self) -> None:
        """The AS cannot be asked: fail closed with 503, so the client keeps its token."""
        failure = self.refuse(
            self.make(TokenRejected("unavailable", "try later")), [b"Bearer " + TOKEN.encode()]
        )
        self.assertEqual(failure.status, 503)
        self.assertEqual(failure.body["error"], "temporarily_unavailable")

    def test_insufficient_scope(self) -> None:
        """RFC 6750 §3.1, MCP "Scope challenge handling": 403 naming the scopes needed."""
        failure = self.refuse(self.make(principal("other"), ("mcp", "mcp:read")), [b"Bearer t"])
        self.assertEqual(failure.status, 403)
        self.assertIn('scope="mcp mcp:read", error="insufficient_scope"', failure.www_authenticate)
        self.assertEqual(failure.body["error"], "insufficient_scope")

    def test_backend_scopes(self) -> None:
        """Per-backend scopes: the challenge names the gateway's and the backend's."""
        authenticator = self.make(principal("mcp"))
        failure = authenticator.insufficient_scope(principal("mcp"), ("files:write",))
        self.assertEqual(failure.status, 403)
        self.assertIn('scope="mcp files:write"', failure.www_authenticate)
        self.assertIn("files:write", failure.body["error_description"])

    def test_a_reload_puts_the_new_backends_scopes_in_the_challenge(self) -> None:
        """A reload (``aigw/reload.py``) that adds a backend with required scopes: a 401
        asks for them too, with the same verifier."""
        authenticator = self.make(principal())
        old = gateway_config(auth_config(required_scopes=("mcp",)))
        files = BackendConfig(name="more", url="http://more/mcp", required_scopes=("x:y",))
        authenticator.follow(old, attrs.evolve(old, backends=(*old.backends, files)))
        failure = self.refuse(authenticator, [])
        self.assertIn('scope="mcp x:y"', failure.www_authenticate)
        self.assertEqual(self.refuse(authenticator, [b"Bearer t"]).status, 403)
        self.assertEqual(self.verifier.tokens, ["t"])

    def test_a_reload_of_auth_settings_verifies_with_a_new_verifier(self) -> None:
        """``auth.required_scopes`` (and the other settings a reload may change): the next
        token goes to a verifier built for them, and the gateway-wide scopes are checked."""
        old = gateway_config(auth_config(required_scopes=("mcp",)))
        first, second = FakeVerifier(principal("mcp")), FakeVerifier(principal("mcp"))
        built: list[Any] = []

        def rebuild(auth: Any) -> FakeVerifier:
            built.append(auth)
            return second

        authenticator = Authenticator.from_config(old, first, rebuild=rebuild)
        new = gateway_config(auth_config(required_scopes=("mcp", "admin")))
        authenticator.follow(old, new)
        self.assertEqual(built, [new.auth])
        failure = self.refuse(authenticator, [b"Bearer t"])
        self.assertEqual(failure.status, 403)
        self.assertIn('scope="mcp admin"', failure.www_authenticate)
        self.assertEqual((first.tokens, second.tokens), ([], ["t"]))

    def test_refusals_logged_without_token(self) -> None:
        rejected = TokenRejected(
            "expired", "expired", {"sub": "user-1", "client_id": "c", "jti": "j"}
        )
        self.refuse(self.make(rejected), [b"Bearer " + TOKEN.encode()])
        (event,) = self.events
        self.assertEqual(
            (event["reason"], event["sub"], event["client_id"], event["jti"], event["status"]),
            ("expired", "user-1", "c", "j", 401),
        )
        self.assertNotIn(TOKEN, repr(self.events))

    def test_every_refusal_logged(self) -> None:
        authenticator = self.make(principal())
        self.refuse(authenticator, [])
        self.refuse(authenticator, [b"Bearer a b"])
        self.refuse(authenticator, [b"Bearer t"])
        self.assertEqual(
            [e["reason"] for e in self.events], ["missing", "malformed", "insufficient_scope"]
        )


class RefusalEventTests(SynchronousTestCase):
    """Every refusal is reported to the observer as ``AuthenticationRefused(status, reason)``."""

    def setUp(self) -> None:
        self.observer = RecordingObserver()

    def make(self, result: Principal | TokenRejected) -> Authenticator:
        config = gateway_config(auth_config(required_scopes=("mcp",)))
        authenticator = Authenticator.from_config(config, FakeVerifier(result), self.observer)
        authenticator.log = Logger(observer=lambda event: None)
        return authenticator

    def refuse(self, authenticator: Authenticator, headers: list[bytes]) -> None:
        self.failureResultOf(ensureDeferred(authenticator.authenticate(headers, {})), AuthFailure)

    def test_a_refused_token(self) -> None:
        self.refuse(
            self.make(TokenRejected("expired", "expired", {})), [b"Bearer " + TOKEN.encode()]
        )
        self.assertEqual(self.observer.refusals, [AuthenticationRefused(401, "expired")])

    def test_every_refusal_with_its_status(self) -> None:
        authenticator = self.make(principal())
        self.refuse(authenticator, [])
        self.refuse(authenticator, [b"Bearer a b"])
        self.refuse(authenticator, [b"Bearer t"])
        self.refuse(self.make(TokenRejected("unavailable", "no answer", {})), [b"Bearer t"])
        self.assertEqual(
            [(event.status, event.reason) for event in self.observer.refusals],
            [
                (401, "missing"),
                (400, "malformed"),
                (403, "insufficient_scope"),
                (503, "unavailable"),
            ],
        )

    def test_the_event_carries_no_token(self) -> None:
        authenticator = self.make(TokenRejected("bad_signature", "bad", {"sub": "u"}))
        self.refuse(authenticator, [b"Bearer " + TOKEN.encode()])
        self.assertNotIn(TOKEN, repr(self.observer.refusals))

    def test_accepted_requests_report_nothing(self) -> None:
        authenticator = self.make(principal("mcp"))
        self.successResultOf(
            ensureDeferred(authenticator.authenticate([b"Bearer " + TOKEN.encode()], {}))
        )
        self.assertEqual(self.observer.refusals, [])


class WiringTests(SynchronousTestCase):
    def test_build_authenticator(self) -> None:
        """The daemon gets the authenticator, its services, the relay and a readiness check."""
        from twisted.internet.task import Clock
        from twisted.web.client import HTTPConnectionPool

        from aigw.auth.jwks import KeyStore
        from aigw.auth.relay import AuthorizationServerMetadataRelay
        from aigw.auth.wiring import build_authenticator
        from aigw.readiness import Readiness

        clock = Clock()
        readiness = Readiness()
        authenticator, services, relay = build_authenticator(
            gateway_config(auth_config()), clock, HTTPConnectionPool(clock), readiness
        )
        self.assertIsInstance(authenticator, Authenticator)
        self.assertEqual([type(s) for s in services], [KeyStore, AuthorizationServerMetadataRelay])
        self.assertIs(relay, services[1])
        self.assertEqual(readiness.report(), (False, {"signing_keys": "signing keys not loaded"}))

    def test_build_authenticator_auth_none(self) -> None:
        from twisted.internet.task import Clock
        from twisted.web.client import HTTPConnectionPool

        from aigw.auth.wiring import build_authenticator
        from aigw.readiness import Readiness

        clock = Clock()
        authenticator, services, relay = build_authenticator(
            gateway_config(None), clock, HTTPConnectionPool(clock), Readiness()
        )
        self.assertIs(
            self.successResultOf(ensureDeferred(authenticator.authenticate([], {}))), ANONYMOUS
        )
        self.assertEqual((services, relay), ([], None))

    def test_build_authenticator_passes_the_observer_on(self) -> None:
        from twisted.internet.task import Clock
        from twisted.web.client import HTTPConnectionPool

        from aigw.auth.wiring import build_authenticator
        from aigw.readiness import Readiness

        clock = Clock()
        observer = RecordingObserver()
        authenticator, _, _ = build_authenticator(
            gateway_config(auth_config()), clock, HTTPConnectionPool(clock), Readiness(), observer
        )
        authenticator.log = Logger(observer=lambda event: None)
        self.failureResultOf(ensureDeferred(authenticator.authenticate([], {})), AuthFailure)
        self.assertEqual(observer.refusals, [AuthenticationRefused(401, "missing")])
