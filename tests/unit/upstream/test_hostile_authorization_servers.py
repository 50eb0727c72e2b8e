"""Hostile answers where aigw is the OAuth client of servers it did not choose freely.

A ``user_oauth`` backend's 401 and metadata (RFC 9728), its authorization server's
metadata (RFC 8414), registration (RFC 7591) and token endpoint (RFC 6749 §5), and the
token endpoints of ``client_credentials`` and ``token_exchange``: each bad value gets a
bounded answer naming what was wrong, never a traceback, and nothing unchecked is asked
or sent on.  docs/security.md, "aigw as an OAuth client", lists these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.upstream.client_credentials import EXPIRY_LEEWAY, ClientCredentials
from aigw.upstream.learnt_urls import learnt_url_problem
from aigw.upstream.registration import RegistrationFailed, register
from aigw.upstream.token_endpoint import MAX_LIFETIME, TokenEndpoint, TokenRequestFailed
from aigw.upstream.token_exchange import TokenExchange
from aigw.upstream.user_authorization import AuthorizationFailed
from tests.fakes import ScriptedHTTP, ScriptedRequest
from tests.unit.upstream.oauth_backend import ALICE, AS, PRM
from tests.unit.upstream.test_token_credentials import ENDPOINT, SECRET, alice, cc_config, tx_config
from tests.unit.upstream.test_token_credentials import Case as TokenCase
from tests.unit.upstream.test_user_oauth import UserOAuthTestCase

#: A JSON document nested past the interpreter's recursion limit, within 64 KiB.
DEEP = b"[" * 30_000 + b"]" * 30_000
#: Valid JSON past every bound aigw reads (64 KiB, 256 KiB).
HUGE = json.dumps({"pad": "x" * 300_000}).encode()
METADATA_URL = AS + "/.well-known/oauth-authorization-server"


class LearntURLTests(SynchronousTestCase):
    """``learnt_urls.learnt_url_problem``: what discovery may be sent to."""

    def test_refused(self) -> None:
        source = "https://crm.example/mcp"
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "https://169.254.169.254/",
            "https://[fe80::1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://0.0.0.0/",
            "https://[::]/",
            "https://224.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://169.254.43518/",
            "https://127.0.0.1/",
            "http://localhost:8080/",
            "https://[::1]/",
            "http://as.example/token",
            "https://user:pw@as.example/",
            "https://as.example/t#frag",
            "https://as.example/t#",
            "https://as.example/t\r\nX-Evil: 1",
            "https://as.example/t\x00",
            "https://as.example/ä",
            "https://as.example/a b",
            "https://as.example:99999/",
            "ftp://as.example/",
            "file:///etc/passwd",
            "https:///path",
            "https://as.example/" + "a" * 2048,
            42,
            None,
        ]:
            with self.subTest(url=url):
                self.assertIsNotNone(learnt_url_problem(url, source))

    def test_allowed(self) -> None:
        for url, source in [
            ("https://as.example/t1", "https://crm.example/mcp"),
            ("https://tokens.other.example/token?x=1", "https://crm.example/mcp"),
            ("https://10.0.0.5/", "https://crm.example/mcp"),
            ("http://127.0.0.1:9000/token", "http://127.0.0.1:8000/mcp"),
            ("https://localhost/token", "http://localhost:8000/mcp"),
            ("http://[::1]:9/", "http://127.0.0.1:8/mcp"),
        ]:
            with self.subTest(url=url):
                self.assertIsNone(learnt_url_problem(url, source))


class DiscoveryTests(UserOAuthTestCase):
    """RFC 9728 and RFC 8414 discovery from a hostile backend or authorization server."""

    def answering(self, url: str, *answer: Any) -> None:
        """The scripted servers, but ``url`` answers ``answer``."""
        normal = self.backend.answer

        def answers(request: ScriptedRequest) -> tuple[Any, ...]:
            return answer if request.url == url else normal(request)

        self.backend.http.auto = answers

    def asked(self) -> list[str]:
        return [r.url for r in self.backend.http.requests]

    def refused(self, *words: str) -> str:
        error = str(self.fails(self.authorization.server(), AuthorizationFailed))
        for word in words:
            self.assertIn(word, error)
        self.assertNotIn("\n", error)
        self.assertLess(len(error), 600)
        return error

    def test_a_resource_metadata_elsewhere_is_not_asked(self) -> None:
        """RFC 9728 §3.1: the document is on the resource's origin; one named elsewhere
        is ignored for the well-known URL (before: asked, wherever it was)."""
        for named in [
            "https://evil.example/.well-known/oauth-protected-resource",
            "http://169.254.169.254/latest/meta-data/",
            "https://crm.example:8443/.well-known/oauth-protected-resource/mcp",
            "http://crm.example/.well-known/oauth-protected-resource/mcp",
            "https://x@crm.example/.well-known/oauth-protected-resource/mcp",
            "https://crm.example/.well-known/oauth-protected-resource/mcp#f",
            "https://crm.example:99999/.well-known/oauth-protected-resource/mcp",
            "https://crm.example/\r\n",
        ]:
            with self.subTest(named=named):
                self.backend.http.requests.clear()
                self.authorization._server = None
                self.backend.challenge = f'Bearer resource_metadata="{named}"'
                self.assertEqual(self.done(self.authorization.server()).issuer, AS)
                self.assertNotIn(named, self.asked())
                self.assertIn(PRM, self.asked())

    def test_a_hostile_authorization_server_is_never_asked(self) -> None:
        """The backend names the server; aigw checks the name before it asks (before:
        any http(s) URL was asked, the cloud metadata service included)."""
        for issuer, why in [
            ("http://169.254.169.254/latest", "link-local"),
            ("https://localhost:6379", "loopback"),
            ("http://as.example", "https://"),
            ("https://u:p@as.example", "userinfo"),
            ("https://as.example#x", "fragment"),
            ("https://as.example?tenant=1", "query"),
            ("https://as.example\r\nX: 1", "control"),
            ("javascript:alert(1)", "absolute"),
        ]:
            with self.subTest(issuer=issuer):
                self.backend.http.requests.clear()
                self.backend.resource_document["authorization_servers"] = [issuer]
                self.refused("refused", why)
                self.assertFalse([u for u in self.asked() if u.startswith(issuer[:12])])

    def test_endpoints_go_only_where_the_rules_allow(self) -> None:
        """RFC 8414 §2 endpoints: another origin is fine, the rules' refusals are not
        (before: any http(s) URL, the client secret going to a plain-http one)."""
        for key, url, why in [
            ("token_endpoint", "http://169.254.169.254/token", "link-local"),
            ("token_endpoint", "http://as.example/token", "https://"),
            ("authorization_endpoint", "https://as.example/auth#x", "fragment"),
            ("authorization_endpoint", "https://as.example/a\nb", "control"),
            ("registration_endpoint", "https://u:p@as.example/reg", "userinfo"),
            ("registration_endpoint", "https://127.0.0.1/reg", "loopback"),
        ]:
            with self.subTest(key=key, url=url):
                self.backend.metadata = {**as_metadata(), key: url}
                self.refused(key, "refused", why)
        self.backend.metadata = {**as_metadata(), "token_endpoint": "https://t.example/t"}
        self.assertEqual(
            self.done(self.authorization.server()).token_endpoint, "https://t.example/t"
        )

    def test_odd_metadata_values(self) -> None:
        """Not a list, not strings: as if absent; PKCE S256 only from a list."""
        for value in ["S256", {"S256": True}, None, 5]:
            with self.subTest(methods=value):
                self.backend.metadata = {**as_metadata(), "code_challenge_methods_supported": value}
                self.refused("S256")
        self.backend.metadata = {**as_metadata(), "token_endpoint": ["https://as.example/t"]}
        self.refused("lacks an authorization or token endpoint")
        self.backend.metadata = {**as_metadata(), "registration_endpoint": 5}
        self.assertIsNone(self.done(self.authorization.server()).registration_endpoint)

    def test_scopes_that_are_no_scope_tokens_are_dropped(self) -> None:
        """RFC 6749 §3.3 scope-token (they go in a URL and a registration)."""
        self.backend.resource_document["scopes_supported"] = ["crm", "a b", "x\r\ny", 5, '"q"']
        self.assertEqual(self.done(self.authorization.server()).resource_scopes, ("crm",))

    def test_deep_huge_or_broken_documents(self) -> None:
        """Nested past the recursion limit (before: ``RecursionError``, a traceback from
        the user's start page), past the byte bound, not JSON: discovery fails."""
        for url in (PRM, METADATA_URL):
            for body, why in [
                (DEEP, "nested too deep"),
                (HUGE, "larger than"),
                (b"<html>", "JSON"),
            ]:
                with self.subTest(url=url, why=why):
                    self.answering(url, 200, body)
                    self.refused(why)

    def test_duplicate_keys_the_last_wins(self) -> None:
        """RFC 8259 §4 leaves duplicate names to the parser; Python's takes the last, so
        the issuer checked (RFC 8414 §3.3) is the one whose endpoints are used."""
        body = json.dumps(as_metadata())[:-1] + ', "issuer": "https://evil.example"}'
        self.answering(METADATA_URL, 200, body.encode())
        self.refused("evil.example")
        body = '{"issuer": "https://evil.example", ' + json.dumps(as_metadata())[1:]
        self.answering(METADATA_URL, 200, body.encode())
        self.assertEqual(self.done(self.authorization.server()).issuer, AS)


def as_metadata() -> dict[str, Any]:
    """The scripted authorization server's metadata (``oauth_backend.Backend``)."""
    return {
        "issuer": AS,
        "authorization_endpoint": AS + "/auth",
        "token_endpoint": AS + "/token",
        "registration_endpoint": AS + "/reg",
        "code_challenge_methods_supported": ["S256"],
    }


class RegistrationTests(SynchronousTestCase):
    """RFC 7591 §3.2 answers."""

    def register(self, status: int, body: Any) -> Any:
        http = ScriptedHTTP()
        http.auto = lambda request: (status, body)
        clock = Clock()
        clock.advance(1_000_000)
        return ensureDeferred(
            register(
                http,
                clock,
                backend="crm",
                issuer=AS,
                endpoint=AS + "/reg",
                redirect_uri="https://gw.example/cb",
                scope=(),
                time_limit=5,
            )
        )

    def failed(self, status: int, body: Any) -> str:
        error = str(self.failureResultOf(self.register(status, body), RegistrationFailed).value)
        self.assertNotIn("\n", error)
        self.assertLess(len(error), 300)
        return error

    def test_no_usable_client_id(self) -> None:
        """RFC 6749 Appendix A.1: VSCHAR (before: any string, CR, LF and 60 kB ones too)."""
        for client_id in [None, 5, "", "a\r\nb", "é", "x" * 1025, ["a"]]:
            with self.subTest(client_id=client_id):
                self.assertIn("no usable client_id", self.failed(201, {"client_id": client_id}))

    def test_no_usable_client_secret(self) -> None:
        for secret in [5, "a\nb", "x" * 1025, {"s": 1}]:
            with self.subTest(secret=secret):
                body = {"client_id": "c", "client_secret": secret}
                self.assertIn("no usable client_secret", self.failed(201, body))

    def test_odd_secret_expiries_mean_never(self) -> None:
        """RFC 7591 §3.2.1: seconds since the epoch, 0 for never (before: 10**400 or
        Infinity raised ``OverflowError``, a traceback)."""
        for raw in [
            b"true",
            b'"123"',
            b"-1",
            b"NaN",
            b"Infinity",
            b"1e308",
            b"1" + b"0" * 400,
            b"0",
        ]:
            with self.subTest(raw=raw):
                body = (
                    b'{"client_id": "c", "client_secret": "s", "client_secret_expires_at": '
                    + raw
                    + b"}"
                )
                client = self.successResultOf(self.register(201, body))
                self.assertIsNone(client.client_secret_expires_at)
        body = {"client_id": "c", "client_secret": "s", "client_secret_expires_at": 2_000_000}
        self.assertEqual(
            self.successResultOf(self.register(201, body)).client_secret_expires_at, 2e6
        )

    def test_a_refusal_is_quoted_short_and_on_one_line(self) -> None:
        error = self.failed(400, {"error": "invalid_redirect_uri\r\nX-Evil: 1" + "x" * 5000})
        self.assertIn("invalid_redirect_uri  X-Evil: 1", error)

    def test_deep_huge_or_broken(self) -> None:
        for body, why in [(DEEP, "nested too deep"), (HUGE, "larger than"), (b"\xff", "JSON")]:
            with self.subTest(why=why):
                self.assertIn(why, self.failed(201, body))


class TokenAnswerTests(TokenCase):
    """RFC 6749 §5.1 and §5.2 answers of a token endpoint."""

    def request(self, status: int, body: Any) -> Any:
        self.server.auto = lambda request: (status, body)
        endpoint = TokenEndpoint(
            self.server,
            self.clock,
            client_id="aigw",
            client_secret=SECRET,
            client_auth="client_secret_basic",
            timeout=5.0,
            url=ENDPOINT,
        )
        return ensureDeferred(endpoint.request({"grant_type": "client_credentials"}))

    def failed(self, status: int, body: Any) -> str:
        error = str(self.failureResultOf(self.request(status, body), TokenRequestFailed).value)
        self.assertNotIn("\n", error)
        self.assertLess(len(error), 400)
        return error

    def issued(self, **fields: Any) -> Any:
        body = {"access_token": "t", "token_type": "Bearer", **fields}
        return self.successResultOf(self.request(200, body))

    def test_access_tokens_that_could_break_a_header(self) -> None:
        """RFC 6750 §2.1 b64token only: it goes in the backend's ``Authorization``."""
        for token in [None, 5, "", "a b", "t\r\nX-Evil: 1", "t\nX", "t\x00", "tö", "t\x7f", ["t"]]:
            with self.subTest(token=token):
                body = {"access_token": token, "token_type": "Bearer"}
                self.assertIn("no usable access_token", self.failed(200, body))

    def test_token_types_other_than_bearer(self) -> None:
        """RFC 6749 §7.1; a DPoP-bound token (RFC 9449) aigw cannot prove possession of."""
        for token_type in ["DPoP", "N_A", "mac", None, 5, "Bearer\r\nX: 1"]:
            with self.subTest(token_type=token_type):
                body = {"access_token": "t", "token_type": token_type}
                error = self.failed(200, body)
                self.assertIn("not Bearer", error)
        self.assertEqual(self.issued(token_type="bEaReR").access_token, "t")

    def test_expires_in(self) -> None:
        """A number (or ASCII digits) from 0 to a day; anything else is as if absent
        (before: 10**400 raised ``OverflowError``, "²" ``ValueError``, 400 digits or
        1e308 were kept for ever)."""
        for raw, lifetime in [
            (b"3600", 3600.0),
            (b'"3600"', 3600.0),
            (b"0", 0.0),
            (b"-5", 0.0),
            (b"-Infinity", 0.0),
            (b"1e308", MAX_LIFETIME),
            (b"Infinity", MAX_LIFETIME),
            (b"1" + b"0" * 400, MAX_LIFETIME),
            (b'"' + b"9" * 400 + b'"', MAX_LIFETIME),
            (b"31536000000", MAX_LIFETIME),
            (b"NaN", None),
            (b"true", None),
            (b'"\xc2\xb2"', None),
            (b'"1e3"', None),
            (b'"-5"', None),
            (b'"soon"', None),
            (b"null", None),
            (b"[60]", None),
        ]:
            with self.subTest(raw=raw):
                body = b'{"access_token": "t", "token_type": "Bearer", "expires_in": ' + raw + b"}"
                self.assertEqual(self.successResultOf(self.request(200, body)).expires_in, lifetime)

    def test_odd_optional_fields_are_as_if_absent(self) -> None:
        issued = self.issued(refresh_token=5, scope=["a"], id_token={"x": 1}, issued_token_type=7)
        self.assertEqual(
            (issued.refresh_token, issued.scope, issued.id_token, issued.issued_token_type),
            (None, None, None, None),
        )

    def test_deep_huge_or_broken_answers(self) -> None:
        """Before: JSON nested past the recursion limit raised ``RecursionError`` out of
        the token request (a traceback for every call of the backend)."""
        self.assertIn("did not answer a JSON object", self.failed(200, DEEP))
        self.assertIn("answered HTTP 400", self.failed(400, DEEP))
        self.assertIn("larger than", self.failed(200, HUGE))
        self.assertIn("did not answer a JSON object", self.failed(200, b"<html>ok</html>"))
        self.assertIn("did not answer a JSON object", self.failed(200, b'"t"'))

    def test_hostile_error_codes_and_descriptions(self) -> None:
        """RFC 6749 §5.2: quoted short and printable, whatever their size or bytes."""
        body = {"error": "x\r\n" * 2_000, "error_description": "\x1b[31m\n" * 2_000}
        error = self.failed(400, body)
        self.assertIn("refused: x  x", error)
        self.assertNotIn("\x1b", error)
        failure = self.failureResultOf(self.request(400, body), TokenRequestFailed).value
        assert isinstance(failure, TokenRequestFailed)
        self.assertLessEqual(len(failure.code or ""), 121)
        self.assertTrue((failure.code or "").isprintable())
        self.assertIn("answered HTTP 400", self.failed(400, {"error": 5}))


class CachedLifetimeTests(TokenCase):
    """What the bounded ``expires_in`` means for the tokens aigw keeps."""

    def huge(self, request: ScriptedRequest) -> tuple[Any, ...]:
        return 200, b'{"access_token": "t", "token_type": "Bearer", "expires_in": 1e308}'

    def test_the_gateways_token_is_asked_again_within_a_day(self) -> None:
        credentials = ClientCredentials("crm", cc_config(), self.server, self.clock)
        self.server.auto = self.huge
        self.got(self.ask(credentials))
        self.clock.advance(MAX_LIFETIME - EXPIRY_LEEWAY)
        self.got(self.ask(credentials))
        self.assertEqual(credentials.fetches, 2)

    def test_an_exchanged_token_is_kept_no_longer_than_the_users(self) -> None:
        """Before: an ``expires_in`` kept it past the user's token's expiry."""
        exchange = TokenExchange("crm", tx_config(), self.server, self.clock)
        self.server.auto = self.huge
        user = attrs.evolve(alice(), expires_at=self.clock.seconds() + 60)
        self.got(self.ask(exchange, user))
        self.clock.advance(59)
        self.got(self.ask(exchange, user))
        self.assertEqual(exchange.exchanges, 1)
        self.clock.advance(1)
        self.got(self.ask(exchange, user))
        self.assertEqual(exchange.exchanges, 2)

    def test_an_exchanged_token_is_kept_a_day_at_most(self) -> None:
        exchange = TokenExchange("crm", tx_config(), self.server, self.clock)
        self.server.auto = self.huge
        self.got(self.ask(exchange, alice()))
        self.clock.advance(MAX_LIFETIME - EXPIRY_LEEWAY)
        self.got(self.ask(exchange, alice()))
        self.assertEqual(exchange.exchanges, 2)


class UserTokenTests(UserOAuthTestCase):
    """The code grant's answer, through ``UserAuthorization.complete``."""

    def completing(self, body: Any) -> Callable[[], Any]:
        query = self.authorize()
        normal = self.backend.answer

        def answers(request: ScriptedRequest) -> tuple[Any, ...]:
            return (200, body) if request.url == AS + "/token" else normal(request)

        self.backend.http.auto = answers
        state = self.links.open_state(query["state"][0])
        return lambda: self.authorization.complete(state, "the-code")

    def test_a_token_that_would_break_a_header_is_never_stored(self) -> None:
        complete = self.completing({"access_token": "t\r\nX-Evil: 1", "token_type": "Bearer"})
        error = self.fails(complete(), AuthorizationFailed)
        self.assertFalse(error.refused)
        self.assertIn("no usable access_token", str(error))
        self.assertEqual(self.store.tokens, {})

    def test_a_lifetime_of_centuries_is_a_day(self) -> None:
        body = b'{"access_token": "t", "token_type": "Bearer", "expires_in": 1' + b"0" * 400 + b"}"
        token = self.done(self.completing(body)())
        self.assertEqual(token.expires_at, self.clock.seconds() + MAX_LIFETIME)
        self.assertEqual(self.store.tokens[(ALICE.issuer, "alice", "crm")], token)
