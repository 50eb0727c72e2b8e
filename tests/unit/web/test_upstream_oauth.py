"""The start and callback pages of a user's authorization at a ``user_oauth`` backend."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.authenticator import Authenticator
from aigw.config import AuthConfig, BackendConfig, Config, UserOAuthConfig
from aigw.readiness import Readiness
from aigw.sealed.sealer import Sealer
from aigw.upstream.user_authorization import UserAuthorization
from aigw.upstream.user_links import UserLinks
from aigw.upstream.user_oauth import AuthorizationRequired, UserOAuth
from aigw.web.app import GatewayApp
from aigw.web.upstream_oauth import UserOAuthPages
from tests.fakes import MemoryStore
from tests.unit.upstream.oauth_backend import ALICE, AS, PUBLIC, RESOURCE, Backend


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
        config = Config(
            listen=("tcp:1975:interface=127.0.0.1",),
            public_url=PUBLIC,
            mcp_path="/mcp",
            auth=AuthConfig(issuer=ALICE.issuer, audiences=(PUBLIC + "/mcp",)),
            backends=(BackendConfig(name="crm", url=RESOURCE),),
        )
        pages = UserOAuthPages(self.links, {"crm": authorization})
        app = GatewayApp(config, Readiness(), Authenticator(None), None, None, pages)
        self.stub = StubTreq(app.resource())

    def get(self, url: str) -> tuple[Any, str]:
        response = self.successResultOf(self.stub.get(url, allow_redirects=False))
        return response, self.successResultOf(self.stub.content(response)).decode()

    def start(self) -> dict[str, list[str]]:
        """Alice's link, followed: the authorization request aigw redirects to."""
        failure = self.failureResultOf(
            ensureDeferred(self.credentials.headers(ALICE)), AuthorizationRequired
        )
        response, _ = self.get(failure.value.url)
        self.assertEqual(response.code, 302)
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-store"])
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
