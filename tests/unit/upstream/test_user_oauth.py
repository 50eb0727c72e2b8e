"""``auth.user_oauth``: discovery, registration, PKCE, links and states, tokens, refresh.

In memory: a scripted backend and authorization server (``ScriptedHTTP``), a Clock,
the ``MemoryStore``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import UserOAuthConfig
from aigw.gateway.errors import GatewayError
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.sealed.sealer import Sealer
from aigw.store.api import UserToken
from aigw.upstream.api import AuthorizationRequired, UpstreamError
from aigw.upstream.protected_resource import bearer_params, well_known_urls
from aigw.upstream.user_authorization import AuthorizationFailed, UserAuthorization
from aigw.upstream.user_links import LinkRefused, UserLinks
from aigw.upstream.user_oauth import UserOAuth
from tests.fakes import MemoryStore
from tests.unit.upstream.oauth_backend import ALICE, AS, BOB, PRM, PUBLIC, RESOURCE, Backend

T = TypeVar("T")


class UserOAuthTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.backend = Backend()
        self.store = MemoryStore()
        self.links = UserLinks(Sealer.random(), PUBLIC + "/", self.clock)
        self.authorization = self.make(UserOAuthConfig())
        self.credentials = UserOAuth(self.authorization, self.clock)

    def make(self, config: UserOAuthConfig) -> UserAuthorization:
        return UserAuthorization(
            "crm", RESOURCE, config, self.store, self.links, self.backend.http, self.clock
        )

    def done(self, coroutine: Any) -> Any:
        return self.successResultOf(ensureDeferred(coroutine))

    def fails(self, coroutine: Any, error: type[T]) -> T:
        failure = self.failureResultOf(ensureDeferred(coroutine), error)
        value: T = failure.value
        return value

    def authorize(self, principal: Principal = ALICE) -> dict[str, list[str]]:
        """Alice (or another) follows her link; the authorization request's query."""
        required = self.fails(self.credentials.headers(principal), AuthorizationRequired)
        link = parse_qs(urlsplit(required.url).query)["link"][0]
        location = self.done(self.authorization.begin(self.links.open_link(link)))
        self.assertTrue(location.startswith(AS + "/auth?"))
        return parse_qs(urlsplit(location).query)

    def complete(self, query: dict[str, list[str]]) -> UserToken:
        state = self.links.open_state(query["state"][0])
        token: UserToken = self.done(self.authorization.complete(state, "the-code"))
        return token


class ChallengeTests(SynchronousTestCase):
    def test_bearer_params(self) -> None:
        header = 'Basic realm="x", Bearer realm="a b", resource_metadata="https://r/\\"m\\""'
        self.assertEqual(
            bearer_params(header), {"realm": "a b", "resource_metadata": 'https://r/"m"'}
        )
        self.assertEqual(bearer_params("Bearer scope=a, Basic realm=y"), {"scope": "a"})
        self.assertEqual(bearer_params("Basic realm=y"), {})

    def test_well_known_urls(self) -> None:
        self.assertEqual(
            well_known_urls("https://h:8/a/mcp/"),
            [
                "https://h:8/.well-known/oauth-protected-resource/a/mcp",
                "https://h:8/.well-known/oauth-protected-resource",
            ],
        )


class DiscoveryTests(UserOAuthTestCase):
    def test_learnt_from_the_backends_401_once(self) -> None:
        server = self.done(self.authorization.server())
        self.assertEqual((server.issuer, server.token_endpoint), (AS, AS + "/token"))
        self.assertEqual(server.resource_scopes, ("crm",))
        self.done(self.authorization.server())
        self.assertEqual(len(self.backend.sent(RESOURCE)), 1)
        (probe,) = self.backend.sent(RESOURCE)
        self.assertNotIn("Authorization", probe.kwargs["headers"])

    def test_without_resource_metadata_the_well_known_url_is_asked(self) -> None:
        self.backend.challenge = 'Bearer realm="crm"'
        self.assertEqual(self.done(self.authorization.server()).issuer, AS)
        self.assertEqual(len(self.backend.sent(PRM)), 1)

    def test_metadata_of_another_resource_is_refused(self) -> None:
        self.backend.resource_document["resource"] = "https://evil.example/mcp"
        error = self.fails(self.authorization.server(), AuthorizationFailed)
        self.assertIn("not https://crm.example/mcp", str(error))

    def test_a_server_without_pkce_s256_is_refused(self) -> None:
        self.backend.metadata["code_challenge_methods_supported"] = ["plain"]
        self.assertIn("S256", str(self.fails(self.authorization.server(), AuthorizationFailed)))

    def test_a_failure_is_tried_again(self) -> None:
        self.backend.resource_document["authorization_servers"] = []
        self.fails(self.authorization.server(), AuthorizationFailed)
        self.backend.resource_document["authorization_servers"] = [AS]
        self.assertEqual(self.done(self.authorization.server()).issuer, AS)


class AuthorizationRequestTests(UserOAuthTestCase):
    def test_registered_once_then_pkce_s256_with_the_backend_as_resource(self) -> None:
        query = self.authorize()
        (registration,) = self.backend.sent(AS + "/reg")
        self.assertEqual(registration.json["redirect_uris"], [PUBLIC + "/oauth/upstream/callback"])
        self.assertEqual(registration.json["grant_types"], ["authorization_code", "refresh_token"])
        stored = self.store.clients[("crm", AS)]
        self.assertEqual((stored.client_id, stored.client_secret), ("reg-1", "rs"))
        self.assertEqual(query["client_id"], ["reg-1"])
        self.assertEqual(query["response_type"], ["code"])
        self.assertEqual(query["resource"], [RESOURCE])
        self.assertEqual(query["scope"], ["crm"])
        self.assertEqual(query["redirect_uri"], [PUBLIC + "/oauth/upstream/callback"])
        self.assertEqual(query["code_challenge_method"], ["S256"])
        verifier = self.links.open_state(query["state"][0]).verifier
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        self.assertEqual(query["code_challenge"], [challenge])
        self.authorize(BOB)
        self.assertEqual(len(self.backend.sent(AS + "/reg")), 1)

    def test_a_configured_client_is_not_registered(self) -> None:
        self.authorization = self.make(
            UserOAuthConfig(client_id="mine", client_secret="sec", scope=("a", "b"))
        )
        self.credentials = UserOAuth(self.authorization, self.clock)
        query = self.authorize()
        self.assertEqual((query["client_id"], query["scope"]), (["mine"], ["a b"]))
        self.assertEqual(self.backend.sent(AS + "/reg"), [])

    def test_no_registration_endpoint_and_no_client_says_what_to_configure(self) -> None:
        del self.backend.metadata["registration_endpoint"]
        link = self.fails(self.credentials.headers(ALICE), AuthorizationRequired).url
        grant = self.links.open_link(parse_qs(urlsplit(link).query)["link"][0])
        error = self.fails(self.authorization.begin(grant), AuthorizationFailed)
        self.assertIn("auth.user_oauth.client_id", str(error))


class LinkTests(UserOAuthTestCase):
    def link(self) -> str:
        url = self.fails(self.credentials.headers(ALICE), AuthorizationRequired).url
        self.assertTrue(url.startswith(PUBLIC + "/oauth/upstream/start?link="))
        return parse_qs(urlsplit(url).query)["link"][0]

    def test_bound_to_the_user_and_the_backend(self) -> None:
        grant = self.links.open_link(self.link())
        self.assertEqual(
            (grant.issuer, grant.subject, grant.backend), (ALICE.issuer, "alice", "crm")
        )

    def test_single_use(self) -> None:
        link = self.link()
        self.links.open_link(link)
        self.assertEqual(self.refused(lambda: self.links.open_link(link)), "replayed")

    def test_expires(self) -> None:
        link = self.link()
        self.clock.advance(601)
        self.assertEqual(self.refused(lambda: self.links.open_link(link)), "expired")

    def test_forged_or_altered_or_a_state_is_invalid(self) -> None:
        link = self.link()
        altered = link[:-2] + ("AA" if link[-2:] != "AA" else "BB")
        for bad in (None, "", "x" * 50, altered):
            self.assertEqual(self.refused(lambda bad=bad: self.links.open_link(bad)), "invalid")
        state = self.authorize()["state"][0]
        self.assertEqual(self.refused(lambda: self.links.open_link(state)), "invalid")
        self.assertEqual(self.refused(lambda: self.links.open_state(link)), "invalid")

    def test_a_state_is_single_use_and_expires(self) -> None:
        state = self.authorize()["state"][0]
        self.links.open_state(state)
        self.assertEqual(self.refused(lambda: self.links.open_state(state)), "replayed")
        other = self.authorize(BOB)["state"][0]
        self.clock.advance(601)
        self.assertEqual(self.refused(lambda: self.links.open_state(other)), "expired")

    def test_the_minting_process_travels_from_the_link_to_the_state(self) -> None:
        """The callback's process learns which process answered the -32042, and where
        its peers reach it (``sessions.peer_url``, read at each mint)."""
        here = ["http://10.0.0.5:1975/mcp"]
        self.links = UserLinks(
            Sealer.random(), PUBLIC + "/", self.clock, lambda: ("proc-a", here[0])
        )
        self.authorization = self.make(UserOAuthConfig())
        self.credentials = UserOAuth(self.authorization, self.clock)
        grant = self.links.open_link(self.link())
        self.assertEqual((grant.process, grant.peer_url), ("proc-a", here[0]))
        login = self.links.open_login(self.links.seal_login(grant, "v", "n", "c"))
        state = self.links.open_state(self.links.seal_state(login.grant, "v", "c", "as"))
        self.assertEqual(state.grant, grant)
        here[0] = "http://10.0.0.6:1975/mcp"  # a reload changed it
        self.assertEqual(self.links.open_link(self.link()).peer_url, here[0])

    def test_a_link_minted_without_a_process_names_none(self) -> None:
        grant = self.links.open_link(self.link())
        self.assertEqual((grant.process, grant.peer_url), (None, None))

    def refused(self, opening: Callable[[], object]) -> str:
        with self.assertRaises(LinkRefused) as caught:
            opening()
        return caught.exception.reason


class TokenTests(UserOAuthTestCase):
    def test_the_code_is_exchanged_with_the_verifier_and_stored_per_user(self) -> None:
        state = self.links.open_state(self.authorize()["state"][0])
        token = self.done(self.authorization.complete(state, "the-code"))
        exchange = self.backend.sent(AS + "/token")[-1]
        self.assertEqual(exchange.form["grant_type"], "authorization_code")
        self.assertEqual(exchange.form["code"], "the-code")
        self.assertEqual(exchange.form["resource"], RESOURCE)
        self.assertEqual(exchange.form["redirect_uri"], PUBLIC + "/oauth/upstream/callback")
        self.assertEqual(exchange.form["code_verifier"], state.verifier)
        self.assertTrue(exchange.authorization and exchange.authorization.startswith("Basic "))
        self.assertEqual(self.store.tokens[(ALICE.issuer, "alice", "crm")], token)
        self.assertEqual((token.access_token, token.refresh_token), ("at-1", "rt-1"))
        self.assertEqual(token.expires_at, self.clock.seconds() + 3600)

    def test_the_stored_token_goes_upstream_and_each_user_has_their_own(self) -> None:
        self.complete(self.authorize())
        self.complete(self.authorize(BOB))
        self.assertEqual(
            self.done(self.credentials.headers(ALICE)), ((b"Authorization", b"Bearer at-1"),)
        )
        self.assertEqual(
            self.done(self.credentials.headers(BOB)), ((b"Authorization", b"Bearer at-2"),)
        )

    def test_no_user_no_token(self) -> None:
        error = self.fails(self.credentials.headers(None), Exception)
        self.assertEqual(getattr(error, "kind", None), "credentials")

    def test_refreshed_before_it_expires_once_for_concurrent_requests(self) -> None:
        self.complete(self.authorize())
        self.clock.advance(3600 - 20)
        self.backend.http.auto = None
        first = ensureDeferred(self.credentials.headers(ALICE))
        second = ensureDeferred(self.credentials.headers(ALICE))
        (refresh,) = self.backend.http.requests[-1:]
        self.assertEqual(refresh.form["grant_type"], "refresh_token")
        self.assertEqual(refresh.form["refresh_token"], "rt-1")
        self.assertEqual(refresh.form["resource"], RESOURCE)
        self.backend.http.answer(refresh, *self.backend.answer(refresh))
        for waiting in (first, second):
            self.assertEqual(self.successResultOf(waiting), ((b"Authorization", b"Bearer at-2"),))
        self.assertEqual(self.backend.issued, 2)
        self.assertEqual(self.store.tokens[(ALICE.issuer, "alice", "crm")].refresh_token, "rt-2")

    def test_a_refused_refresh_forgets_the_token_and_asks_again(self) -> None:
        self.complete(self.authorize())
        self.clock.advance(3600)
        self.backend.refresh_answer = (400, {"error": "invalid_grant"})
        self.fails(self.credentials.headers(ALICE), AuthorizationRequired)
        self.assertEqual(self.store.tokens, {})

    def test_a_refresh_the_server_could_not_answer_keeps_the_token_while_it_lasts(self) -> None:
        self.complete(self.authorize())
        self.clock.advance(3600 - 20)
        self.backend.refresh_answer = (503, b"down")
        self.assertEqual(
            self.done(self.credentials.headers(ALICE)), ((b"Authorization", b"Bearer at-1"),)
        )
        self.clock.advance(20)
        error = self.fails(self.credentials.headers(ALICE), UpstreamError)
        self.assertEqual(error.kind, "credentials")
        self.assertIn("HTTP 503", error.detail)
        self.assertIn((ALICE.issuer, "alice", "crm"), self.store.tokens)

    def test_a_failing_store_fails_the_request_naming_the_backend(self) -> None:
        self.store.fail = OSError("disk")
        error = self.fails(self.credentials.headers(ALICE), UpstreamError)
        self.assertEqual((error.backend, error.kind), ("crm", "credentials"))
        self.flushLoggedErrors(OSError)

    def test_a_backend_401_forgets_the_token_and_asks_again(self) -> None:
        self.complete(self.authorize())
        self.complete(self.authorize(BOB))
        self.fails(self.credentials.refused(ALICE), AuthorizationRequired)
        self.assertEqual(list(self.store.tokens), [(BOB.issuer, "bob", "crm")])

    def test_a_refused_code_is_a_refusal(self) -> None:
        query = self.authorize()
        self.backend.http.auto = lambda request: (400, {"error": "invalid_grant"})
        state = self.links.open_state(query["state"][0])
        error = self.fails(self.authorization.complete(state, "stale"), AuthorizationFailed)
        self.assertTrue(error.refused)
        self.assertEqual(self.store.tokens, {})


class ElicitationErrorTests(SynchronousTestCase):
    required = AuthorizationRequired(
        "crm", "e-1", PUBLIC + "/oauth/upstream/start?link=x", "no", 1_000_600.0
    )

    def test_url_elicitation_required(self) -> None:
        error = GatewayError.from_upstream(self.required, url_elicitation=True).to_error()
        self.assertEqual(error["code"], jsonrpc.URL_ELICITATION_REQUIRED)
        self.assertEqual(
            error["data"]["elicitations"],
            [
                {
                    "mode": "url",
                    "elicitationId": "e-1",
                    "url": self.required.url,
                    "message": error["message"],
                }
            ],
        )

    def test_a_client_without_url_elicitation_gets_the_url_in_the_message(self) -> None:
        error = GatewayError.from_upstream(self.required, url_elicitation=False).to_error()
        self.assertEqual(error["code"], jsonrpc.UPSTREAM_CREDENTIALS)
        self.assertIn(self.required.url, error["message"])
        self.assertNotIn("elicitations", error["data"])
