"""``backends[].auth``: client credentials, token exchange, claims as headers."""

from __future__ import annotations

from aigw.config import load_config, parse_config
from aigw.config.credentials import ACCESS_TOKEN_TYPE
from tests.unit.config.helpers import MINIMAL, ConfigTestCase, example_block

CC = "    auth:\n      client_credentials:\n"  # lines 8-9; keys from line 10
TX = "    auth:\n      token_exchange:\n"
#: MINIMAL with an issuer instead of ``auth: none`` (on the same line 4).
BASE = MINIMAL.replace("auth: none\n", "auth: {issuer: https://as.example}\n")


def lines(*keys: str) -> str:
    return "".join(f"        {key}\n" for key in keys)


class ClientCredentialsTests(ConfigTestCase):
    def test_every_key(self) -> None:
        secret = self.directory() / "cc.secret"
        secret.write_text("s3cret\n")
        text = (
            MINIMAL
            + CC
            + lines(
                "token_endpoint: https://idp.example/token",
                "client_id: aigw",
                f"client_secret_file: {secret}",
                "scope: crm read",
                "resource: https://crm.internal/mcp",
                "audience: crm",
                "client_auth: client_secret_post",
                "timeout: 5s",
                f"ca_file: {secret}",
            )
        )
        auth = parse_config(text, env={}).backends[0].auth
        assert auth is not None
        assert auth.client_credentials is not None
        cc = auth.client_credentials
        self.assertEqual(cc.ca_file, str(secret.resolve()))
        self.assertEqual(cc.token_endpoint, "https://idp.example/token")
        self.assertIsNone(cc.issuer)
        self.assertEqual((cc.client_id, cc.client_secret), ("aigw", "s3cret"))
        self.assertEqual(cc.scope, ("crm", "read"))
        self.assertEqual((cc.resource, cc.audience), ("https://crm.internal/mcp", "crm"))
        self.assertEqual((cc.client_auth, cc.timeout), ("client_secret_post", 5.0))
        self.assertIsNone(auth.token_exchange)

    def test_the_secret_is_not_in_the_repr(self) -> None:
        text = BASE + CC + lines("issuer: https://idp.example", "client_id: a", "client_secret: s3")
        config = parse_config(text, env={})
        self.assertNotIn("s3", repr(config.backends[0].auth))

    def test_issuer_instead_of_token_endpoint_and_defaults(self) -> None:
        text = BASE + CC + lines("issuer: https://idp.example", "client_id: a", "client_secret: s")
        auth = parse_config(text, env={}).backends[0].auth
        assert auth is not None
        assert auth.client_credentials is not None
        cc = auth.client_credentials
        self.assertEqual((cc.issuer, cc.token_endpoint), ("https://idp.example", None))
        self.assertEqual((cc.scope, cc.client_auth, cc.timeout), ((), "client_secret_basic", 10.0))
        # The backend's ca_file is used then (upstream.token_endpoint.server_client).
        self.assertIsNone(cc.ca_file)

    def test_scope_as_a_list(self) -> None:
        text = BASE + CC + lines("issuer: https://i.example", "client_id: a", "client_secret: s")
        text += "        scope: [a, b]\n"
        auth = parse_config(text, env={}).backends[0].auth
        assert auth is not None
        assert auth.client_credentials is not None
        self.assertEqual(auth.client_credentials.scope, ("a", "b"))

    def test_neither_endpoint_nor_issuer(self) -> None:
        text = BASE + CC + lines("client_id: a", "client_secret: s")
        self.assertProblem(text, "backends[0].auth.client_credentials", 10, "token_endpoint")

    def test_endpoint_and_issuer_both(self) -> None:
        text = (
            MINIMAL
            + CC
            + lines(
                "token_endpoint: https://i.example/t",
                "issuer: https://i.example",
                "client_id: a",
                "client_secret: s",
            )
        )
        self.assertProblem(text, "backends[0].auth.client_credentials.issuer", 11, "not both")

    def test_plain_http_only_on_loopback(self) -> None:
        """Client secrets and users' tokens go to these URLs: TLS off loopback (OAuth 2.1 §1.5)."""
        for key, mode in (("token_endpoint", CC), ("issuer", CC), ("token_endpoint", TX)):
            text = (
                BASE
                + mode
                + lines(f"{key}: http://idp.example/t", "client_id: a", "client_secret: s")
            )
            self.assertProblem(
                text, f"backends[0].auth.{mode.split()[-1][:-1]}.{key}", 10, "https://"
            )
        for host in ("127.0.0.1:9", "localhost", "[::1]:8"):
            text = (
                BASE
                + CC
                + lines(f"token_endpoint: http://{host}/t", "client_id: a", "client_secret: s")
            )
            self.assertIsNotNone(parse_config(text, env={}).backends[0].auth)

    def test_secret_is_required(self) -> None:
        text = BASE + CC + lines("issuer: https://i.example", "client_id: a")
        self.assertProblem(text, "backends[0].auth.client_credentials.client_secret", 10, "missing")

    def test_secret_and_its_file_both(self) -> None:
        text = BASE + CC + lines("issuer: https://i.example", "client_id: a", "client_secret: s")
        text += "        client_secret_file: /x\n"
        self.assertProblem(
            text, "backends[0].auth.client_credentials.client_secret_file", 13, "not both"
        )

    def test_unknown_client_auth(self) -> None:
        text = BASE + CC + lines("issuer: https://i.example", "client_id: a", "client_secret: s")
        text += "        client_auth: private_key_jwt\n"
        self.assertProblem(text, "backends[0].auth.client_credentials.client_auth", 13)

    def test_bad_scope(self) -> None:
        text = BASE + CC + lines("issuer: https://i.example", "client_id: a", "client_secret: s")
        text += "        scope: 'a \"b'\n"
        self.assertProblem(text, "backends[0].auth.client_credentials.scope", 13, "not a scope")

    def test_resource_must_be_a_url_without_fragment(self) -> None:
        text = BASE + CC + lines("issuer: https://i.example", "client_id: a", "client_secret: s")
        text += "        resource: https://crm/mcp#x\n"
        self.assertProblem(text, "backends[0].auth.client_credentials.resource", 13, "fragment")


class TokenExchangeTests(ConfigTestCase):
    def test_every_key(self) -> None:
        ca = self.directory() / "tx-ca.pem"
        ca.write_text("a CA\n")
        text = (
            BASE
            + TX
            + lines(
                "token_endpoint: https://idp.example/token",
                "client_id: aigw",
                "client_secret: s",
                "audience: crm",
                "resource: https://crm.internal/mcp",
                "scope: read",
                "requested_token_type: urn:ietf:params:oauth:token-type:jwt",
                "cache_size: 5",
                f"ca_file: {ca}",
            )
        )
        auth = parse_config(text, env={}).backends[0].auth
        assert auth is not None
        assert auth.token_exchange is not None
        tx = auth.token_exchange
        self.assertEqual(tx.token_endpoint, "https://idp.example/token")
        self.assertEqual((tx.audience, tx.resource), ("crm", "https://crm.internal/mcp"))
        self.assertEqual(tx.requested_token_type, "urn:ietf:params:oauth:token-type:jwt")
        self.assertEqual((tx.scope, tx.cache_size), (("read",), 5))
        self.assertEqual(tx.ca_file, str(ca.resolve()))

    def test_defaults(self) -> None:
        text = BASE + TX + lines("token_endpoint: https://i.example/t", "client_id: a")
        text += "        client_secret: s\n"
        auth = parse_config(text, env={}).backends[0].auth
        assert auth is not None
        assert auth.token_exchange is not None
        self.assertEqual(auth.token_exchange.requested_token_type, ACCESS_TOKEN_TYPE)
        self.assertEqual(auth.token_exchange.client_auth, "client_secret_basic")
        self.assertIsNone(auth.token_exchange.ca_file)

    def test_token_endpoint_is_required(self) -> None:
        text = BASE + TX + lines("client_id: a", "client_secret: s")
        self.assertProblem(text, "backends[0].auth.token_exchange.token_endpoint", 10, "missing")

    def test_requested_token_type_must_be_a_uri(self) -> None:
        text = BASE + TX + lines("token_endpoint: https://i/t", "client_id: a", "client_secret: s")
        text += "        requested_token_type: access token\n"
        self.assertProblem(
            text, "backends[0].auth.token_exchange.requested_token_type", 13, "absolute URI"
        )


class CAFileTests(ConfigTestCase):
    """``ca_file`` of the modes that ask a token endpoint: a file that is read at load."""

    def test_a_missing_ca_file_is_named_with_its_line(self) -> None:
        for mode, first in ((CC, "issuer: https://i.example"), (TX, "token_endpoint: https://i/t")):
            text = BASE + mode + lines(first, "client_id: a", "client_secret: s")
            text += "        ca_file: nowhere.pem\n"
            key = f"backends[0].auth.{mode.split()[-1][:-1]}.ca_file"
            self.assertProblem(text, key, 13, "nowhere.pem")

    def test_a_relative_ca_file_is_the_configs_neighbour(self) -> None:
        directory = self.directory()
        (directory / "idp-ca.pem").write_text("a CA\n")
        text = BASE + CC + lines("issuer: https://i.example", "client_id: a", "client_secret: s")
        path = directory / "aigw.yaml"
        path.write_text(text + "        ca_file: idp-ca.pem\n")
        auth = load_config(str(path)).backends[0].auth
        assert auth is not None
        assert auth.client_credentials is not None
        self.assertEqual(auth.client_credentials.ca_file, str((directory / "idp-ca.pem").resolve()))


class ModesTests(ConfigTestCase):
    def test_two_modes_are_refused(self) -> None:
        text = BASE + (
            "    auth:\n"
            "      client_credentials: {issuer: https://i.ex, client_id: a, client_secret: s}\n"
            "      token_exchange: {token_endpoint: https://i/t, client_id: a, client_secret: s}\n"
        )
        self.assertProblem(text, "backends[0].auth.token_exchange", 10, "not both")

    def test_unknown_key(self) -> None:
        text = BASE + "    auth:\n      client_credential: {}\n"
        self.assertProblem(text, "backends[0].auth.client_credential", 9, "did you mean")

    def test_static_authorization_with_a_mode_is_refused(self) -> None:
        text = BASE + (
            "    headers: {Authorization: Bearer x}\n"
            "    auth:\n"
            "      client_credentials: {issuer: https://i.ex, client_id: a, client_secret: s}\n"
        )
        self.assertProblem(text, "backends[0].auth", 10, "Authorization")

    def test_static_authorization_with_claims_only_is_fine(self) -> None:
        text = BASE + (
            "    headers: {Authorization: Bearer x}\n"
            "    auth:\n"
            "      claims_to_headers: {sub: X-Forwarded-User}\n"
        )
        backend = parse_config(text, env={}).backends[0]
        assert backend.auth is not None
        self.assertEqual(backend.auth.claims_to_headers, {"sub": "X-Forwarded-User"})
        self.assertIsNone(backend.auth.client_credentials)


class UserOAuthTests(ConfigTestCase):
    UO = "    auth:\n      user_oauth:\n"  # keys from line 10

    def stateful(self, text: str) -> str:
        """``text`` with the ``state_dir`` where users' tokens persist, and its key."""
        directory = self.directory().resolve()
        (directory / "store.key").write_bytes(b"s" * 32)
        (directory / "store.key").chmod(0o600)
        return text + f"state_dir: {directory}\ntoken_store:\n  key_file: {directory}/store.key\n"

    def test_user_oauth_and_another_mode_are_refused(self) -> None:
        text = self.stateful(
            BASE + "    auth:\n"
            "      client_credentials: {issuer: https://i.ex, client_id: a, client_secret: s}\n"
            "      user_oauth: {}\n"
        )
        self.assertProblem(text, "backends[0].auth.user_oauth", 10, "not both")

    def test_needs_state_dir(self) -> None:
        text = BASE + "    auth:\n      user_oauth: {}\n"
        self.assertProblem(text, "backends[0].auth.user_oauth", 9, "needs state_dir")

    def test_every_key(self) -> None:
        secret = self.directory() / "uo.secret"
        secret.write_text("s3cret\n")
        text = self.stateful(
            BASE
            + self.UO
            + lines(
                "client_id: aigw-at-crm",
                f"client_secret_file: {secret}",
                "scope: crm.read crm.write",
                "client_auth: client_secret_post",
                "timeout: 5s",
                "link_ttl: 2m",
                f"ca_file: {secret}",
            )
        )
        auth = parse_config(text, env={}).backends[0].auth
        assert auth is not None
        assert auth.user_oauth is not None
        uo = auth.user_oauth
        self.assertEqual((uo.client_id, uo.client_secret), ("aigw-at-crm", "s3cret"))
        self.assertEqual(uo.scope, ("crm.read", "crm.write"))
        self.assertEqual((uo.client_auth, uo.timeout, uo.link_ttl), ("client_secret_post", 5, 120))
        self.assertEqual(uo.ca_file, str(secret.resolve()))
        self.assertNotIn("s3cret", repr(auth))

    def test_a_missing_ca_file_is_named(self) -> None:
        text = self.stateful(BASE + self.UO + lines("ca_file: nowhere.pem"))
        self.assertProblem(text, "backends[0].auth.user_oauth.ca_file", 10, "nowhere.pem")

    def test_empty_means_dynamic_registration(self) -> None:
        text = self.stateful(BASE + "    auth:\n      user_oauth: {}\n")
        auth = parse_config(text, env={}).backends[0].auth
        assert auth is not None
        assert auth.user_oauth is not None
        self.assertEqual((auth.user_oauth.client_id, auth.user_oauth.client_secret), (None, None))
        self.assertEqual((auth.user_oauth.scope, auth.user_oauth.link_ttl), ((), 600.0))
        # The backend's ca_file is used then (upstream.user_authorization.oauth_clients).
        self.assertIsNone(auth.user_oauth.ca_file)

    def test_a_secret_needs_a_client_id(self) -> None:
        text = self.stateful(BASE + self.UO + lines("client_secret: s"))
        self.assertProblem(text, "backends[0].auth.user_oauth.client_secret", 10, "client_id")

    def test_needs_a_user(self) -> None:
        text = self.stateful(MINIMAL + "    auth:\n      user_oauth: {}\n")
        self.assertProblem(text, "backends[0].auth.user_oauth", 9, "needs auth")

    def test_static_authorization_is_refused_beside_it(self) -> None:
        text = BASE + "    headers: {Authorization: Bearer x}\n    auth:\n      user_oauth: {}\n"
        text = self.stateful(text)
        self.assertProblem(text, "backends[0].auth", 10, "Authorization")


class ClaimsToHeadersTests(ConfigTestCase):
    def claims(self, mapping: str) -> str:
        return BASE + f"    auth:\n      claims_to_headers: {mapping}\n"  # line 9

    def test_claims_and_dotted_paths(self) -> None:
        text = self.claims("{sub: X-Forwarded-User, org.id: X-Org, email: X-Email}")
        auth = parse_config(text, env={}).backends[0].auth
        assert auth is not None
        self.assertEqual(
            auth.claims_to_headers,
            {"sub": "X-Forwarded-User", "org.id": "X-Org", "email": "X-Email"},
        )

    def test_header_name_must_be_a_token(self) -> None:
        text = self.claims("{sub: 'X-User\\r\\nX-Evil'}")
        self.assertProblem(text, "backends[0].auth.claims_to_headers.sub", 9, "header name")

    def test_reserved_headers_are_refused(self) -> None:
        for name in ("Authorization", "Host", "Mcp-Session-Id", "Mcp-Param-X", "content-length"):
            text = self.claims(f"{{sub: {name}}}")
            self.assertProblem(text, "backends[0].auth.claims_to_headers.sub", 9, "set by aigw")

    def test_one_header_per_claim(self) -> None:
        text = self.claims("{sub: X-User, email: x-user}")
        self.assertProblem(text, "backends[0].auth.claims_to_headers.email", 9, "another claim")

    def test_bad_claim_path(self) -> None:
        text = self.claims("{'a..b': X-A}")
        self.assertProblem(text, "backends[0].auth.claims_to_headers.a..b", 9, "claim")

    def test_a_claim_header_cannot_also_be_static(self) -> None:
        text = BASE + (
            "    headers: {X-User: fixed}\n    auth:\n      claims_to_headers: {sub: x-user}\n"
        )
        self.assertProblem(text, "backends[0].auth", 10, "static header")


class ExampleTests(ConfigTestCase):
    def test_the_shipped_example_of_auth_loads(self) -> None:
        """etc/aigw/aigw.yaml documents backends[].auth with keys that load."""
        directory = self.directory()
        (directory / "crm-client.secret").write_text("s\n")
        (directory / "idp-ca.pem").write_text("a CA\n")
        path = directory / "aigw.yaml"
        path.write_text(MINIMAL + example_block("    # auth:"))
        auth = load_config(str(path), env={}).backends[0].auth
        assert auth is not None
        assert auth.client_credentials is not None
        self.assertEqual(auth.client_credentials.scope, ("crm.read", "crm.write"))
        self.assertEqual(auth.client_credentials.ca_file, str((directory / "idp-ca.pem").resolve()))
        self.assertEqual(auth.claims_to_headers["sub"], "X-Forwarded-User")


class NoAuthTests(ConfigTestCase):
    def test_token_exchange_needs_auth(self) -> None:
        """``auth: none`` has no user token to exchange."""
        text = (
            MINIMAL + TX + lines("token_endpoint: https://i/t", "client_id: a", "client_secret: s")
        )
        self.assertProblem(text, "backends[0].auth.token_exchange", 10, "needs auth")

    def test_token_exchange_with_auth(self) -> None:
        text = BASE + TX
        text += lines("token_endpoint: https://i/t", "client_id: a", "client_secret: s")
        backend = parse_config(text, env={}).backends[0]
        assert backend.auth is not None
        self.assertIsNotNone(backend.auth.token_exchange)
