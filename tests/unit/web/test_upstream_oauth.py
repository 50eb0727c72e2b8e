"""The start and callback pages of a user's authorization at a ``user_oauth`` backend."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.authenticator import Authenticator
from aigw.auth.browser_login import LOGIN_CLIENT, BrowserLogin
from aigw.config import AuthConfig, BackendConfig, Config, UserOAuthConfig
from aigw.config.model import BrowserLoginConfig
from aigw.httpjson import client_secret_basic
from aigw.readiness import Readiness
from aigw.sealed.sealer import Sealer
from aigw.upstream.api import AuthorizationRequired
from aigw.upstream.user_authorization import UserAuthorization
from aigw.upstream.user_links import Grant, UserLinks
from aigw.upstream.user_oauth import UserOAuth
from aigw.web.app import GatewayApp
from aigw.web.upstream_oauth import UserOAuthPages
from tests.fakes import MemoryStore
from tests.unit.upstream.oauth_backend import (
    AIGW_AS,
    ALICE,
    AS,
    LOGIN_CLIENT_ID,
    PUBLIC,
    RESOURCE,
    Backend,
    LoginKeys,
)


class PagesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.backend = Backend()
        self.store = MemoryStore()
        self.links = UserLinks(Sealer.random(), PUBLIC, self.clock)
        authorization = UserAuthorization(
            "crm",
            RESOURCE,
            UserOAuthConfig(),
            self.store,
            self.links,
            self.backend.http,
            self.clock,
        )
        self.credentials = UserOAuth(authorization, self.clock)
        auth = AuthConfig(issuer=ALICE.issuer, audiences=(PUBLIC + "/mcp",))
        config = Config(
            listen=("tcp:1975:interface=127.0.0.1",),
            public_url=PUBLIC,
            mcp_path="/mcp",
            auth=auth,
            backends=(BackendConfig(name="crm", url=RESOURCE),),
        )
        login = BrowserLogin(
            auth, LoginKeys(), self.store, self.links, self.backend.http, self.clock
        )
        #: The elicitation ids the pages said were completed (the gateway's notices).
        self.told: list[str] = []
        pages = UserOAuthPages(self.links, {"crm": authorization}, login, self.tell)
        app = GatewayApp(config, Readiness(), Authenticator(None), None, None, pages)
        self.stub = StubTreq(app.resource())

    async def tell(self, grant: Grant) -> int:
        self.told.append(grant.elicitation_id)
        return 1

    def get(self, url: str) -> tuple[Any, str]:
        response = self.successResultOf(self.stub.get(url, allow_redirects=False))
        return response, self.successResultOf(self.stub.content(response)).decode()

    def sign_in(self) -> dict[str, list[str]]:
        """Alice's link, followed: the OpenID Connect request to aigw's own issuer."""
        failure = self.failureResultOf(
            ensureDeferred(self.credentials.headers(ALICE)), AuthorizationRequired
        )
        self.elicitation_id = failure.value.elicitation_id
        response, _ = self.get(failure.value.url)
        self.assertEqual(response.code, 302)
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-store"])
        location = response.headers.getRawHeaders("location")[0]
        self.assertTrue(location.startswith(AIGW_AS + "/auth?"))
        query = parse_qs(urlsplit(location).query)
        self.backend.login_nonce = query["nonce"][0]
        return query

    def login(self, **query: str) -> tuple[Any, str]:
        return self.get(f"{PUBLIC}/oauth/upstream/login?{urlencode(query)}")

    def start(self) -> dict[str, list[str]]:
        """Alice's link, followed, Alice signed in: the backend's authorization request."""
        state = self.sign_in()["state"][0]
        response, page = self.login(code="lc", state=state, iss=AIGW_AS)
        self.assertEqual(response.code, 302, page)
        location = response.headers.getRawHeaders("location")[0]
        self.assertTrue(location.startswith(AS + "/auth?"))
        return parse_qs(urlsplit(location).query)

    def callback(self, **query: str) -> tuple[Any, str]:
        return self.get(f"{PUBLIC}/oauth/upstream/callback?{urlencode(query)}")

    def test_start_then_callback_stores_alices_token(self) -> None:
        state = self.start()["state"][0]
        response, page = self.callback(code="c", state=state, iss=AS)
        self.assertEqual(response.code, 200)
        self.assertIn("You can close this page", page)
        self.assertEqual(response.headers.getRawHeaders("referrer-policy"), ["no-referrer"])
        token = self.store.tokens[(ALICE.issuer, "alice", "crm")]
        self.assertNotIn(token.access_token, page)
        self.assertEqual(
            self.successResultOf(ensureDeferred(self.credentials.headers(ALICE))),
            ((b"Authorization", b"Bearer at-1"),),
        )
        # The elicitation the link came from is complete (client/elicitation).
        self.assertEqual(self.told, [self.elicitation_id])

    def test_a_replayed_state_is_refused(self) -> None:
        state = self.start()["state"][0]
        self.callback(code="c", state=state)
        response, page = self.callback(code="c", state=state)
        self.assertEqual(response.code, 400)
        self.assertIn("used already", page)

    def test_an_expired_state_is_refused(self) -> None:
        state = self.start()["state"][0]
        self.clock.advance(601)
        response, page = self.callback(code="c", state=state)
        self.assertEqual(response.code, 400)
        self.assertIn("expired", page)
        self.assertEqual(self.store.tokens, {})

    def test_a_forged_state_or_link_is_refused(self) -> None:
        response, page = self.callback(code="c", state="forged")
        self.assertEqual((response.code, "not a state" in page), (400, True))
        response, page = self.get(PUBLIC + "/oauth/upstream/start?link=forged")
        self.assertEqual((response.code, "not a link" in page), (400, True))
        response, _ = self.get(PUBLIC + "/oauth/upstream/start")
        self.assertEqual(response.code, 400)

    def test_the_servers_error_and_a_mix_up_are_refused(self) -> None:
        state = self.start()["state"][0]
        response, page = self.callback(error="access_denied", state=state)
        self.assertEqual(response.code, 400)
        self.assertIn("access_denied", page)
        state = self.start()["state"][0]
        response, page = self.callback(code="c", state=state, iss="https://evil.example")
        self.assertEqual((response.code, "Wrong authorization server" in page), (400, True))
        self.assertEqual(self.store.tokens, {})
        self.assertEqual(self.told, [])  # nothing completed

    def test_an_unreachable_authorization_server_is_a_502(self) -> None:
        self.backend.http.auto = lambda request: (503, b"down")
        failure = self.failureResultOf(
            ensureDeferred(self.credentials.headers(ALICE)), AuthorizationRequired
        )
        response, _ = self.get(failure.value.url)
        self.assertEqual(response.code, 502)

    def test_a_store_that_fails_is_a_502_not_a_traceback(self) -> None:
        state = self.start()["state"][0]
        self.store.fail = OSError("disk full")
        response, page = self.callback(code="c", state=state)
        self.assertEqual(response.code, 502)
        self.assertIn("token store failed: OSError", page)
        self.assertNotIn("Traceback", page)

    # Who opens a link: the browser's user at aigw's issuer must be the link's user
    # (MCP 2025-11-25 client/elicitation, Security Considerations, "Phishing").

    def test_the_sign_in_request_is_openid_with_pkce_and_a_nonce(self) -> None:
        query = self.sign_in()
        self.assertEqual(query["scope"], ["openid"])
        self.assertEqual(query["response_type"], ["code"])
        self.assertEqual(query["code_challenge_method"], ["S256"])
        self.assertEqual(query["client_id"], [LOGIN_CLIENT_ID])
        self.assertEqual(query["redirect_uri"], [PUBLIC + "/oauth/upstream/login"])
        self.assertGreaterEqual(len(query["nonce"][0]), 32)
        # Registered once (RFC 7591) under a name no backend can have.
        (registration,) = self.backend.sent(AIGW_AS + "/reg")
        self.assertEqual(registration.json["redirect_uris"], [PUBLIC + "/oauth/upstream/login"])
        self.assertIsNotNone(self.store.clients.get((LOGIN_CLIENT, AIGW_AS)))
        self.sign_in()
        self.assertEqual(len(self.backend.sent(AIGW_AS + "/reg")), 1)

    def test_a_configured_login_client_is_used_without_registering(self) -> None:
        auth = AuthConfig(
            issuer=ALICE.issuer,
            audiences=(PUBLIC + "/mcp",),
            browser_login=BrowserLoginConfig(client_id=LOGIN_CLIENT_ID, client_secret="cs"),
        )
        login = BrowserLogin(
            auth, LoginKeys(), self.store, self.links, self.backend.http, self.clock
        )
        failure = self.failureResultOf(
            ensureDeferred(self.credentials.headers(ALICE)), AuthorizationRequired
        )
        grant = self.links.open_link(parse_qs(urlsplit(failure.value.url).query)["link"][0])
        location = self.successResultOf(ensureDeferred(login.begin(grant)))
        query = parse_qs(urlsplit(location).query)
        self.assertEqual(query["client_id"], [LOGIN_CLIENT_ID])
        self.assertEqual(self.backend.sent(AIGW_AS + "/reg"), [])
        self.backend.login_nonce = query["nonce"][0]
        state = self.links.open_login(query["state"][0])
        self.successResultOf(ensureDeferred(login.complete(state, "lc")))
        (exchange,) = self.backend.sent(AIGW_AS + "/token")
        self.assertEqual(
            exchange.authorization, client_secret_basic(LOGIN_CLIENT_ID, "cs").decode()
        )

    def test_the_code_is_exchanged_with_the_verifier(self) -> None:
        query = self.sign_in()
        self.login(code="lc", state=query["state"][0], iss=AIGW_AS)
        (exchange,) = self.backend.sent(AIGW_AS + "/token")
        self.assertEqual(exchange.form["code"], "lc")
        self.assertEqual(exchange.form["redirect_uri"], PUBLIC + "/oauth/upstream/login")
        self.assertGreaterEqual(len(exchange.form["code_verifier"]), 43)

    def test_alices_link_opened_by_bob_is_403_and_nothing_is_stored(self) -> None:
        self.backend.login_sub = "bob"
        state = self.sign_in()["state"][0]
        response, page = self.login(code="lc", state=state, iss=AIGW_AS)
        self.assertEqual(response.code, 403)
        self.assertIn("belongs to another user", page)
        self.assertIsNone(response.headers.getRawHeaders("location"))
        # Never sent on to the backend's authorization server; no token for anyone.
        self.assertEqual(self.backend.sent(AS + "/reg"), [])
        self.assertEqual(self.store.tokens, {})

    def assert_refused(self, reason: str, **claims: Any) -> None:
        self.backend.login_claims = claims
        state = self.sign_in()["state"][0]
        response, page = self.login(code="lc", state=state, iss=AIGW_AS)
        self.assertEqual(response.code, 400, page)
        self.assertIn(reason, page)
        self.assertEqual(self.backend.sent(AS + "/reg"), [])
        self.assertEqual(self.store.tokens, {})

    def test_an_id_token_of_another_login_is_refused(self) -> None:
        self.assert_refused("nonce", nonce="another-login")

    def test_an_expired_id_token_is_refused(self) -> None:
        self.assert_refused("expired", exp=1_000)

    def test_an_id_token_for_another_client_is_refused(self) -> None:
        self.assert_refused("refused", aud="someone-else")

    def test_an_id_token_of_another_issuer_is_refused(self) -> None:
        self.assert_refused("refused", iss=AS)

    def test_an_unsigned_id_token_is_refused(self) -> None:
        unsigned = jwt.encode({"sub": "alice"}, None, "none")
        self.backend.http.auto = lambda request: (
            (200, {"access_token": "l", "token_type": "Bearer", "id_token": unsigned})
            if request.url == AIGW_AS + "/token"
            else Backend.answer(self.backend, request)
        )
        state = self.sign_in()["state"][0]
        response, page = self.login(code="lc", state=state, iss=AIGW_AS)
        self.assertEqual(response.code, 400)
        self.assertIn("algorithm", page)

    def test_a_replayed_or_forged_sign_in_state_is_refused(self) -> None:
        state = self.sign_in()["state"][0]
        self.assertEqual(self.login(code="lc", state=state, iss=AIGW_AS)[0].code, 302)
        response, page = self.login(code="lc", state=state, iss=AIGW_AS)
        self.assertEqual(response.code, 400)
        self.assertIn("used already", page)
        # A sign-in state is no backend state (sealed for another purpose), nor the reverse.
        self.assertEqual(self.callback(code="c", state=state)[0].code, 400)
        backend_state = self.start()["state"][0]
        self.assertEqual(self.login(code="c", state=backend_state)[0].code, 400)

    def test_a_mix_up_at_sign_in_is_refused(self) -> None:
        state = self.sign_in()["state"][0]
        response, _ = self.login(code="lc", state=state, iss=AS)
        self.assertEqual(response.code, 400)
        self.assertEqual(self.backend.sent(AIGW_AS + "/token"), [])
