"""Credentials per backend: client credentials, token exchange, claims as headers.

In memory: a fake token endpoint whose answers the test releases, and a Clock.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from aigw.config import (
    BackendAuthConfig,
    BackendConfig,
    ClientCredentialsConfig,
    TokenExchangeConfig,
)
from aigw.gateway.errors import GatewayError
from aigw.principal import BearerToken, Principal
from aigw.protocol import jsonrpc
from aigw.upstream.api import UpstreamError
from aigw.upstream.claims import ClaimsHeaders
from aigw.upstream.client import Upstream
from aigw.upstream.client_credentials import RETRY_AFTER, ClientCredentials
from aigw.upstream.credentials import BackendCredentials, build_credentials
from aigw.upstream.token_endpoint import TokenEndpoint, TokenRequestFailed
from aigw.upstream.token_exchange import TokenExchange

ENDPOINT = "https://idp.example/token"
SECRET = "s3cr:t!"
USER_TOKEN = "user.access.token"
BOB_TOKEN = "bob.token"


@attrs.define
class _Response:
    code: int
    body: bytes
    headers: Headers = attrs.field(factory=Headers)

    @property
    def length(self) -> int:
        return len(self.body)


@attrs.define
class _Request:
    method: str
    url: str
    kwargs: dict[str, Any]
    answer: Deferred[Any]

    @property
    def form(self) -> dict[str, str]:
        return dict(self.kwargs["data"])

    @property
    def authorization(self) -> str | None:
        values = self.kwargs["headers"].get("Authorization")
        return values[0].decode() if values else None


class TokenServer:
    """An ``HTTPClient`` whose requests wait until the test answers them."""

    def __init__(self) -> None:
        self.requests: list[_Request] = []
        self.auto: Callable[[_Request], tuple[int, Any]] | None = None

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        request = _Request(method, url, kwargs, Deferred())
        self.requests.append(request)
        if self.auto is not None:
            status, body = self.auto(request)
            self.answer(request, status, body)
        return request.answer

    def collect(self, response: Any, collector: Any) -> Deferred[None]:
        collector(response.body)
        return succeed(None)

    def answer(self, request: _Request, status: int, body: Any) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.answer.callback(_Response(status, raw))

    def token(self, request: _Request, value: str, expires_in: float | None = 3600) -> None:
        body: dict[str, Any] = {"access_token": value, "token_type": "Bearer"}
        if expires_in is not None:
            body["expires_in"] = expires_in
        self.answer(request, 200, body)


def alice(token: str | None = USER_TOKEN, **claims: Any) -> Principal:
    return Principal(
        "https://as.example",
        "alice",
        "cli",
        frozenset(),
        {"sub": "alice", **claims},
        None,
        None,
        BearerToken(token) if token is not None else None,
    )


def bob(token: str = BOB_TOKEN) -> Principal:
    return attrs.evolve(alice(token), subject="bob", claims={"sub": "bob"})


def cc_config(**overrides: Any) -> ClientCredentialsConfig:
    values: dict[str, Any] = {
        "client_id": "aigw gw",
        "client_secret": SECRET,
        "token_endpoint": ENDPOINT,
        "scope": ("crm", "read"),
        "resource": "https://crm.internal/mcp",
        "timeout": 5.0,
    }
    values.update(overrides)
    return ClientCredentialsConfig(**values)


def tx_config(**overrides: Any) -> TokenExchangeConfig:
    values: dict[str, Any] = {
        "token_endpoint": ENDPOINT,
        "client_id": "aigw",
        "client_secret": SECRET,
        "audience": "crm",
        "resource": "https://crm.internal/mcp",
        "timeout": 5.0,
    }
    values.update(overrides)
    return TokenExchangeConfig(**values)


class Case(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = TokenServer()
        self.clock = Clock()
        self.clock.advance(1_000_000)

    def ask(self, credentials: Any, principal: Principal | None = None) -> Deferred[Any]:
        return ensureDeferred(credentials.headers(principal))

    def got(self, d: Deferred[Any]) -> list[tuple[bytes, bytes]]:
        return list(self.successResultOf(d))

    def refused(self, d: Deferred[Any]) -> UpstreamError:
        error = self.failureResultOf(d, UpstreamError).value
        assert isinstance(error, UpstreamError)
        self.assertEqual(error.kind, "credentials")
        self.assertNotIn(SECRET, str(error))
        self.assertNotIn(USER_TOKEN, str(error))
        return error


class TokenEndpointTests(Case):
    def endpoint(self, **kwargs: Any) -> TokenEndpoint:
        values: dict[str, Any] = {
            "client_id": "aigw gw",
            "client_secret": SECRET,
            "client_auth": "client_secret_basic",
            "timeout": 5.0,
            "url": ENDPOINT,
        }
        values.update(kwargs)
        return TokenEndpoint(self.server, self.clock, **values)

    def test_client_secret_basic(self) -> None:
        """RFC 6749 §2.3.1: id and secret form-encoded, then Basic."""
        d = ensureDeferred(self.endpoint().request({"grant_type": "client_credentials"}))
        request = self.server.requests[0]
        self.assertEqual((request.method, request.url), ("POST", ENDPOINT))
        pair = base64.b64encode(b"aigw+gw:" + urllib.parse.quote_plus(SECRET).encode())
        self.assertEqual(request.authorization, "Basic " + pair.decode())
        self.assertEqual(request.form, {"grant_type": "client_credentials"})
        self.assertFalse(request.kwargs["allow_redirects"])
        self.server.token(request, "t1", 60)
        issued = self.successResultOf(d)
        self.assertEqual((issued.access_token, issued.expires_in), ("t1", 60))
        self.assertNotIn("t1", repr(issued))

    def test_client_secret_post(self) -> None:
        endpoint = self.endpoint(client_auth="client_secret_post")
        ensureDeferred(endpoint.request({"grant_type": "client_credentials"}))
        request = self.server.requests[0]
        self.assertIsNone(request.authorization)
        self.assertEqual(request.form["client_id"], "aigw gw")
        self.assertEqual(request.form["client_secret"], SECRET)

    def failed(self, status: int, body: Any) -> TokenRequestFailed:
        d = ensureDeferred(self.endpoint().request({}))
        self.server.answer(self.server.requests[0], status, body)
        error = self.failureResultOf(d, TokenRequestFailed).value
        assert isinstance(error, TokenRequestFailed)
        self.assertNotIn(SECRET, str(error))
        return error

    def test_a_refusal_names_the_error_code_and_a_short_excerpt(self) -> None:
        """RFC 6749 §5.2."""
        body = {"error": "invalid_client", "error_description": "no\r\nsuch " + "x" * 500}
        error = self.failed(401, body)
        self.assertTrue(error.refused)
        self.assertIn("refused: invalid_client (no  such xxx", str(error))
        self.assertLess(len(str(error)), 250)
        self.assertNotIn("\n", str(error))

    def test_a_server_error_is_its_status(self) -> None:
        error = self.failed(503, b"<html>down " + SECRET.encode() + b"</html>")
        self.assertFalse(error.refused)
        self.assertEqual(str(error), f"{ENDPOINT} answered HTTP 503")

    def test_not_json(self) -> None:
        self.assertIn("JSON object", str(self.failed(200, b"[1]")))

    def test_a_token_that_would_break_a_header_is_refused(self) -> None:
        error = self.failed(200, {"access_token": "t\r\nX-Evil: 1", "token_type": "Bearer"})
        self.assertIn("no usable access_token", str(error))

    def test_only_bearer_tokens(self) -> None:
        error = self.failed(200, {"access_token": "t", "token_type": "N_A"})
        self.assertIn("not Bearer", str(error))

    def test_unreachable(self) -> None:
        d = ensureDeferred(self.endpoint().request({}))
        self.server.requests[0].answer.errback(ConnectionRefusedError("refused"))
        self.assertIn("failed", str(self.failureResultOf(d, TokenRequestFailed).value))

    def test_no_answer_within_the_timeout(self) -> None:
        d = ensureDeferred(self.endpoint().request({}))
        self.clock.advance(5)
        self.assertIn("no answer", str(self.failureResultOf(d, TokenRequestFailed).value))

    def test_the_issuer_metadata_names_the_endpoint(self) -> None:
        """RFC 8414 §3: discovered once, then used."""
        issuer = "https://idp.example/t1"

        def metadata(request: _Request) -> tuple[int, Any]:
            if "well-known" in request.url:
                return 200, {"issuer": issuer, "token_endpoint": ENDPOINT}
            return 200, {"access_token": "t", "token_type": "bearer"}

        self.server.auto = metadata
        endpoint = self.endpoint(url=None, issuer=issuer)
        for _ in range(2):
            self.successResultOf(ensureDeferred(endpoint.request({})))
        urls = [r.url for r in self.server.requests]
        well_known = "https://idp.example/.well-known/oauth-authorization-server/t1"
        self.assertEqual(urls, [well_known, ENDPOINT, ENDPOINT])

    def test_a_discovered_plain_http_endpoint_is_refused(self) -> None:
        """The client secret never goes over plain http off loopback (OAuth 2.1 §1.5)."""
        issuer = "https://idp.example"
        insecure = "http://idp.example/token"
        self.server.auto = lambda request: (200, {"issuer": issuer, "token_endpoint": insecure})
        d = ensureDeferred(self.endpoint(url=None, issuer=issuer).request({}))
        self.assertIn(
            "must be an https:// URL", str(self.failureResultOf(d, TokenRequestFailed).value)
        )
        self.assertEqual(len(self.server.requests), 1)


class ClientCredentialsTests(Case):
    def credentials(self, **overrides: Any) -> ClientCredentials:
        return ClientCredentials("crm", cc_config(**overrides), self.server, self.clock)

    def test_the_grant_asks_for_the_backend(self) -> None:
        """RFC 6749 §4.4.2 with RFC 8707's resource; the user has no part in it."""
        credentials = self.credentials(audience="crm-api")
        d = self.ask(credentials, alice())
        request = self.server.requests[0]
        self.assertEqual(
            request.form,
            {
                "grant_type": "client_credentials",
                "scope": "crm read",
                "resource": "https://crm.internal/mcp",
                "audience": "crm-api",
            },
        )
        self.server.token(request, "gw-token")
        self.assertEqual(self.got(d), [(b"Authorization", b"Bearer gw-token")])

    def test_one_token_for_every_request_and_user_until_renewal(self) -> None:
        credentials = self.credentials()
        self.server.auto = lambda r: (
            200,
            {"access_token": "t1", "token_type": "Bearer", "expires_in": 100},
        )
        for principal in (alice(), bob(), None, alice()):
            self.assertEqual(
                self.got(self.ask(credentials, principal)), [(b"Authorization", b"Bearer t1")]
            )
        self.assertEqual(credentials.fetches, 1)

    def test_concurrent_requests_wait_on_one_fetch(self) -> None:
        credentials = self.credentials()
        waiting = [self.ask(credentials, alice()) for _ in range(3)]
        self.assertEqual(len(self.server.requests), 1)
        self.assertNoResult(waiting[0])
        self.server.token(self.server.requests[0], "t1")
        for d in waiting:
            self.assertEqual(self.got(d), [(b"Authorization", b"Bearer t1")])

    def test_a_waiter_that_gives_up_does_not_cancel_the_fetch(self) -> None:
        credentials = self.credentials()
        first, second = self.ask(credentials), self.ask(credentials)
        first.cancel()
        self.server.token(self.server.requests[0], "t1")
        self.assertEqual(self.got(second), [(b"Authorization", b"Bearer t1")])
        self.failureResultOf(first)

    def test_renewed_ahead_of_expiry_without_making_requests_wait(self) -> None:
        """At 80% of a 1000 s lifetime (30 s before expiry would be later)."""
        credentials = self.credentials()
        d = self.ask(credentials)
        self.server.token(self.server.requests[0], "t1", expires_in=1000)
        self.successResultOf(d)
        self.clock.advance(799)
        self.got(self.ask(credentials))
        self.assertEqual(len(self.server.requests), 1)
        self.clock.advance(1)
        # Due for renewal: this request goes with t1, and one renewal starts.
        self.assertEqual(self.got(self.ask(credentials)), [(b"Authorization", b"Bearer t1")])
        self.assertEqual(self.got(self.ask(credentials)), [(b"Authorization", b"Bearer t1")])
        self.assertEqual(len(self.server.requests), 2)
        self.server.token(self.server.requests[1], "t2", expires_in=1000)
        self.assertEqual(self.got(self.ask(credentials)), [(b"Authorization", b"Bearer t2")])

    def test_short_lived_tokens_renew_30_seconds_before(self) -> None:
        credentials = self.credentials()
        self.ask(credentials)
        self.server.token(self.server.requests[0], "t1", expires_in=60)
        self.clock.advance(29)
        self.got(self.ask(credentials))
        self.assertEqual(len(self.server.requests), 1)
        self.clock.advance(1)
        self.got(self.ask(credentials))
        self.assertEqual(len(self.server.requests), 2)

    def test_an_expired_token_is_never_sent(self) -> None:
        credentials = self.credentials()
        self.ask(credentials)
        self.server.token(self.server.requests[0], "t1", expires_in=60)
        self.clock.advance(56)  # within the last 5 s
        d = self.ask(credentials)
        self.assertNoResult(d)
        self.server.token(self.server.requests[1], "t2", expires_in=60)
        self.assertEqual(self.got(d), [(b"Authorization", b"Bearer t2")])

    def test_a_failure_is_a_credentials_error_naming_the_backend(self) -> None:
        credentials = self.credentials()
        d = self.ask(credentials, alice())
        self.server.answer(self.server.requests[0], 401, {"error": "invalid_client"})
        error = self.refused(d)
        self.assertEqual(error.backend, "crm")
        self.assertIn("invalid_client", error.detail)
        gateway_error = GatewayError.from_upstream(error)
        self.assertEqual(gateway_error.code, jsonrpc.UPSTREAM_CREDENTIALS)
        self.assertEqual(gateway_error.data["backend"], "crm")
        self.assertEqual(gateway_error.data["reason"], "credentials")

    def test_a_failure_is_remembered_briefly(self) -> None:
        """The token endpoint is not asked again by every request while it fails."""
        credentials = self.credentials()
        d = self.ask(credentials)
        self.server.answer(self.server.requests[0], 503, b"")
        self.refused(d)
        self.refused(self.ask(credentials))
        self.assertEqual(len(self.server.requests), 1)
        self.clock.advance(RETRY_AFTER)
        d = self.ask(credentials)
        self.assertEqual(len(self.server.requests), 2)
        self.server.token(self.server.requests[1], "t2")
        self.assertEqual(self.got(d), [(b"Authorization", b"Bearer t2")])

    def test_a_failed_renewal_keeps_the_valid_token(self) -> None:
        credentials = self.credentials()
        self.ask(credentials)
        self.server.token(self.server.requests[0], "t1", expires_in=100)
        self.clock.advance(80)
        self.got(self.ask(credentials))
        self.server.answer(self.server.requests[1], 503, b"")
        self.assertEqual(self.got(self.ask(credentials)), [(b"Authorization", b"Bearer t1")])

    def test_no_expires_in_means_a_default_lifetime(self) -> None:
        credentials = self.credentials()
        self.ask(credentials)
        self.server.token(self.server.requests[0], "t1", expires_in=None)
        self.clock.advance(200)
        self.got(self.ask(credentials))
        self.assertEqual(len(self.server.requests), 1)
        self.clock.advance(40)  # 240 s: 80% of 300
        self.got(self.ask(credentials))
        self.assertEqual(len(self.server.requests), 2)


class TokenExchangeTests(Case):
    def exchange(self, **overrides: Any) -> TokenExchange:
        return TokenExchange("crm", tx_config(**overrides), self.server, self.clock)

    def test_the_users_token_is_the_subject_token(self) -> None:
        """RFC 8693 §2.1: grant type, subject token and its type, the backend as target."""
        d = self.ask(self.exchange(scope=("read",)), alice())
        request = self.server.requests[0]
        self.assertEqual(
            request.form,
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": USER_TOKEN,
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "resource": "https://crm.internal/mcp",
                "audience": "crm",
                "scope": "read",
            },
        )
        self.assertTrue(request.authorization and request.authorization.startswith("Basic "))
        self.server.token(request, "crm-token-for-alice")
        fields = self.got(d)
        self.assertEqual(fields, [(b"Authorization", b"Bearer crm-token-for-alice")])
        self.assertNotIn(USER_TOKEN.encode(), b"".join(v for _, v in fields))

    def test_requested_token_type_is_configurable(self) -> None:
        jwt_type = "urn:ietf:params:oauth:token-type:jwt"
        self.ask(self.exchange(requested_token_type=jwt_type), alice())
        self.assertEqual(self.server.requests[0].form["requested_token_type"], jwt_type)

    def test_cached_per_user_until_it_expires(self) -> None:
        exchange = self.exchange()
        d = self.ask(exchange, alice())
        self.server.token(self.server.requests[0], "for-alice", expires_in=60)
        self.successResultOf(d)
        self.clock.advance(54)
        self.assertEqual(
            self.got(self.ask(exchange, alice())), [(b"Authorization", b"Bearer for-alice")]
        )
        self.assertEqual(exchange.exchanges, 1)
        self.clock.advance(1)  # within the last 5 s: asked again
        d = self.ask(exchange, alice())
        self.assertEqual(exchange.exchanges, 2)
        self.server.token(self.server.requests[1], "for-alice-2", expires_in=60)
        self.assertEqual(self.got(d), [(b"Authorization", b"Bearer for-alice-2")])

    def test_never_shared_between_users_nor_tokens(self) -> None:
        exchange = self.exchange()
        self.server.auto = lambda r: (
            200,
            {
                "access_token": "for-" + r.form["subject_token"],
                "token_type": "Bearer",
                "expires_in": 600,
            },
        )
        self.assertEqual(
            self.got(self.ask(exchange, alice()))[0][1], b"Bearer for-" + USER_TOKEN.encode()
        )
        self.assertEqual(self.got(self.ask(exchange, bob()))[0][1], b"Bearer for-bob.token")
        self.assertEqual(self.got(self.ask(exchange, alice("other")))[0][1], b"Bearer for-other")
        self.assertEqual(exchange.exchanges, 3)

    def test_concurrent_requests_of_one_user_share_one_exchange(self) -> None:
        exchange = self.exchange()
        first, second = self.ask(exchange, alice()), self.ask(exchange, alice())
        third = self.ask(exchange, bob())
        self.assertEqual(len(self.server.requests), 2)
        self.server.token(self.server.requests[0], "a")
        self.server.token(self.server.requests[1], "b")
        self.assertEqual(self.got(first), self.got(second))
        self.assertEqual(self.got(third), [(b"Authorization", b"Bearer b")])

    def test_a_refused_exchange_is_an_error_and_never_falls_back(self) -> None:
        exchange = self.exchange()
        d = self.ask(exchange, alice())
        self.server.answer(
            self.server.requests[0], 400, {"error": "invalid_target", "error_description": "no"}
        )
        error = self.refused(d)
        self.assertIn("token exchange", error.detail)
        self.assertIn("invalid_target", error.detail)
        # Not cached, not replaced: the next request asks again, and fails again.
        d = self.ask(exchange, alice())
        self.server.answer(self.server.requests[1], 400, {"error": "invalid_target"})
        self.refused(d)

    def test_no_user_token_no_exchange(self) -> None:
        exchange = self.exchange()
        for principal in (None, alice(token=None)):
            self.refused(self.ask(exchange, principal))
        self.assertEqual(self.server.requests, [])

    def test_cache_size_zero_keeps_nothing(self) -> None:
        exchange = self.exchange(cache_size=0)
        self.server.auto = lambda r: (
            200,
            {"access_token": "a", "token_type": "Bearer", "expires_in": 60},
        )
        self.got(self.ask(exchange, alice()))
        self.got(self.ask(exchange, alice()))
        self.assertEqual(exchange.exchanges, 2)


class ClaimsHeadersTests(Case):
    def fields(self, mapping: dict[str, str], principal: Principal | None) -> list[Any]:
        return ClaimsHeaders("crm", mapping).fields(principal)

    def test_claims_as_headers(self) -> None:
        principal = alice(email="a@example.com", org={"id": 42}, admin=True)
        mapping = {"sub": "X-Forwarded-User", "org.id": "X-Org", "admin": "X-Admin"}
        self.assertEqual(
            self.fields(mapping, principal),
            [(b"X-Forwarded-User", b"alice"), (b"X-Org", b"42"), (b"X-Admin", b"true")],
        )

    def test_a_claim_named_with_a_dot_is_found(self) -> None:
        principal = alice(**{"https://example.com/org": "acme"})
        self.assertEqual(
            self.fields({"https://example.com/org": "X-Org"}, principal), [(b"X-Org", b"acme")]
        )

    def test_an_absent_claim_is_not_sent(self) -> None:
        self.assertEqual(self.fields({"email": "X-Email"}, alice()), [])
        self.assertEqual(self.fields({"sub": "X-User"}, None), [])

    def test_no_claim_can_inject_a_header(self) -> None:
        for hostile in (
            "alice\r\nX-Admin: true",
            "alice\nX-Admin: true",
            "alice\rX",
            "alice\0",
            "\x7f",
            " alice",
            "alice\t",
            "alicé",
            "x" * 1025,
        ):
            with self.subTest(hostile=hostile):
                error = self.assertRaises(
                    UpstreamError,
                    self.fields,
                    {"name": "X-Name"},
                    alice(name=hostile),
                )
                self.assertEqual(error.kind, "credentials")
                self.assertIn("'name'", error.detail)
                self.assertNotIn(hostile, error.detail)

    def test_objects_and_lists_are_refused(self) -> None:
        for value in ({"a": 1}, ["a"]):
            self.assertRaises(UpstreamError, self.fields, {"x": "X-X"}, alice(x=value))


class BuildTests(Case):
    def backend(self, auth: BackendAuthConfig | None, **headers: str) -> BackendConfig:
        return BackendConfig(name="crm", url="http://127.0.0.1:9/mcp", headers=headers, auth=auth)

    def test_no_auth_is_static_headers(self) -> None:
        credentials = build_credentials(self.backend(None, X_Key="k"), self.clock, self.server)
        self.assertEqual(self.got(self.ask(credentials, alice())), [(b"X_Key", b"k")])

    def test_static_then_token_then_claims(self) -> None:
        auth = BackendAuthConfig(
            client_credentials=cc_config(), claims_to_headers={"sub": "X-User"}
        )
        credentials = build_credentials(self.backend(auth, X_Key="k"), self.clock, self.server)
        self.assertIsInstance(credentials, BackendCredentials)
        d = self.ask(credentials, alice())
        self.server.token(self.server.requests[0], "gw")
        self.assertEqual(
            self.got(d),
            [(b"X_Key", b"k"), (b"Authorization", b"Bearer gw"), (b"X-User", b"alice")],
        )

    def test_token_exchange_with_claims(self) -> None:
        auth = BackendAuthConfig(token_exchange=tx_config(), claims_to_headers={"sub": "X-User"})
        credentials = build_credentials(self.backend(auth), self.clock, self.server)
        d = self.ask(credentials, alice())
        self.server.token(self.server.requests[0], "x")
        self.assertEqual(self.got(d), [(b"Authorization", b"Bearer x"), (b"X-User", b"alice")])

    def test_claims_alone(self) -> None:
        auth = BackendAuthConfig(claims_to_headers={"sub": "X-User"})
        credentials = build_credentials(self.backend(auth), self.clock, self.server)
        self.assertEqual(self.got(self.ask(credentials, alice())), [(b"X-User", b"alice")])

    def test_upstream_builds_its_credentials_from_the_config(self) -> None:
        from twisted.internet.testing import MemoryReactorClock

        reactor = MemoryReactorClock()
        auth = BackendAuthConfig(client_credentials=cc_config())
        upstream = Upstream(self.backend(auth), reactor)
        self.assertIsInstance(upstream.credentials, BackendCredentials)
        upstream.connections.close()


class MoreTokenTests(Case):
    def test_expires_in_as_a_string_is_read(self) -> None:
        credentials = ClientCredentials("crm", cc_config(), self.server, self.clock)
        self.ask(credentials)
        body = {"access_token": "t1", "token_type": "Bearer", "expires_in": "100"}
        self.server.answer(self.server.requests[0], 200, body)
        self.clock.advance(69)  # 30 s before expiry comes before 80% of 100 s
        self.got(self.ask(credentials))
        self.assertEqual(len(self.server.requests), 1)

    def test_a_failed_renewal_is_not_retried_at_once(self) -> None:
        credentials = ClientCredentials("crm", cc_config(), self.server, self.clock)
        self.ask(credentials)
        self.server.token(self.server.requests[0], "t1", expires_in=100)
        self.clock.advance(80)
        self.got(self.ask(credentials))
        self.server.answer(self.server.requests[1], 503, b"")
        for _ in range(3):
            self.got(self.ask(credentials))
        self.assertEqual(len(self.server.requests), 2)
        self.clock.advance(RETRY_AFTER)
        self.got(self.ask(credentials))
        self.assertEqual(len(self.server.requests), 3)
