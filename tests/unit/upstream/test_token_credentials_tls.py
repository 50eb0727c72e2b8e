"""``client_credentials`` and ``token_exchange`` behind a private CA: their token endpoint
(and the ``issuer``'s RFC 8414 metadata) trusted with the mode's ``ca_file``, else the
backend's, else the system's roots; any other certificate fails the request closed.

Real TLS over the in-memory network (``private_ca``), each server with a certificate of
its own CA; the credentials are built from the config as the gateway builds them.
"""

from __future__ import annotations

from typing import Any

from aigw.config import (
    BackendAuthConfig,
    BackendConfig,
    ClientCredentialsConfig,
    TokenExchangeConfig,
)
from aigw.principal import BearerToken, Principal
from aigw.upstream.api import UpstreamCredentials, UpstreamError
from aigw.upstream.client import Upstream
from aigw.upstream.credentials import build_credentials
from tests.unit.memory import run
from tests.unit.upstream.private_ca import CA, Document, PrivateCATestCase

ALICE = Principal(
    "https://as.example",
    "alice",
    "cli",
    frozenset(),
    {"sub": "alice"},
    None,
    None,
    BearerToken("alice-token"),
)
MINTED = {"access_token": "minted", "token_type": "Bearer", "expires_in": 300}


def token_server() -> Document:
    """A token endpoint that answers every POST with the token ``minted``."""
    return Document({}, lambda form: MINTED)


class TokenTrustTestCase(PrivateCATestCase):
    def setUp(self) -> None:
        super().setUp()
        self.tokens = token_server()

    def endpoint(self, signer: CA) -> str:
        """The token endpoint, served with a certificate ``signer`` made."""
        return self.serve(self.tokens, signer) + "/token"

    def backend(self, backend_ca: CA | None, **auth: Any) -> BackendConfig:
        return BackendConfig(
            name="crm",
            url="https://crm.example/mcp",
            ca_file=None if backend_ca is None else backend_ca.file,
            auth=BackendAuthConfig(**auth),
        )

    async def outcome(self, credentials: UpstreamCredentials, principal: Principal | None) -> str:
        """ "Bearer minted", or the error the request fails with."""
        try:
            fields = await credentials.headers(principal)
        except UpstreamError as error:
            self.assertEqual((error.backend, error.kind), ("crm", "credentials"))
            return error.detail
        return dict(fields)[b"Authorization"].decode()


class ClientCredentialsTests(TokenTrustTestCase):
    def credentials(
        self, backend_ca: CA | None, own_ca: CA | None, **where: str
    ) -> UpstreamCredentials:
        config = ClientCredentialsConfig(
            client_id="aigw",
            client_secret="s",
            ca_file=None if own_ca is None else own_ca.file,
            **where,
        )
        return build_credentials(self.backend(backend_ca, client_credentials=config), self.reactor)

    @run
    async def test_its_own_ca_file_is_trusted(self) -> None:
        url = self.endpoint(self.server_ca)
        credentials = self.credentials(self.backend_ca, self.server_ca, token_endpoint=url)
        self.assertEqual(await self.outcome(credentials, None), "Bearer minted")
        self.assertEqual(self.tokens.forms[0][b"grant_type"], [b"client_credentials"])

    @run
    async def test_the_backends_ca_file_by_default(self) -> None:
        url = self.endpoint(self.backend_ca)
        credentials = self.credentials(self.backend_ca, None, token_endpoint=url)
        self.assertEqual(await self.outcome(credentials, None), "Bearer minted")

    @run
    async def test_another_ca_fails_closed_naming_the_endpoint(self) -> None:
        url = self.endpoint(self.server_ca)
        credentials = self.credentials(self.backend_ca, None, token_endpoint=url)
        why = await self.outcome(credentials, None)
        self.assertIn(f"client credentials: POST {url} failed", why)
        self.assertIn("certificate verify failed", why)
        self.assertEqual(self.tokens.forms, [])

    @run
    async def test_no_ca_file_is_the_systems_roots(self) -> None:
        url = self.endpoint(self.backend_ca)
        why = await self.outcome(self.credentials(None, None, token_endpoint=url), None)
        self.assertIn("certificate verify failed", why)

    @run
    async def test_the_issuers_metadata_is_asked_with_the_same_trust(self) -> None:
        """RFC 8414 discovery of the token endpoint: the same server, the same trust."""
        issuer = self.serve(self.tokens, self.server_ca)
        self.tokens.document = {"issuer": issuer, "token_endpoint": issuer + "/token"}
        trusted = self.credentials(None, self.server_ca, issuer=issuer)
        self.assertEqual(await self.outcome(trusted, None), "Bearer minted")
        untrusted = self.credentials(self.backend_ca, None, issuer=issuer)
        why = await self.outcome(untrusted, None)
        self.assertIn(f"no token endpoint: GET {issuer}/.well-known/", why)
        self.assertIn("certificate verify failed", why)
        self.assertEqual(len(self.tokens.forms), 1)

    @run
    async def test_the_backend_is_not_asked_without_its_token(self) -> None:
        """A request whose credentials fail is never sent without them."""
        backend = Document({}, lambda form: {})
        address = self.serve(backend, self.backend_ca)
        config = ClientCredentialsConfig(
            client_id="aigw", client_secret="s", token_endpoint=self.endpoint(self.server_ca)
        )
        upstream = Upstream(
            BackendConfig(
                name="crm",
                url=address + "/mcp",
                ca_file=self.backend_ca.file,
                auth=BackendAuthConfig(client_credentials=config),
            ),
            self.reactor,
        )
        with self.assertRaises(UpstreamError) as raised:
            await upstream.post(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}', lambda _: None)
        self.assertIn("certificate verify failed", raised.exception.detail)
        self.assertEqual(backend.forms, [])
        self.assertEqual(self.network.open_connections(), 0)
        upstream.connections.close()


class TokenExchangeTests(TokenTrustTestCase):
    def credentials(self, backend_ca: CA | None, own_ca: CA | None, url: str) -> Any:
        config = TokenExchangeConfig(
            token_endpoint=url,
            client_id="aigw",
            client_secret="s",
            audience="crm",
            ca_file=None if own_ca is None else own_ca.file,
        )
        return build_credentials(self.backend(backend_ca, token_exchange=config), self.reactor)

    @run
    async def test_its_own_ca_file_is_trusted(self) -> None:
        url = self.endpoint(self.server_ca)
        credentials = self.credentials(self.backend_ca, self.server_ca, url)
        self.assertEqual(await self.outcome(credentials, ALICE), "Bearer minted")
        self.assertEqual(self.tokens.forms[0][b"subject_token"], [b"alice-token"])

    @run
    async def test_the_backends_ca_file_by_default(self) -> None:
        credentials = self.credentials(self.backend_ca, None, self.endpoint(self.backend_ca))
        self.assertEqual(await self.outcome(credentials, ALICE), "Bearer minted")

    @run
    async def test_another_ca_fails_closed_naming_the_endpoint(self) -> None:
        url = self.endpoint(self.server_ca)
        why = await self.outcome(self.credentials(self.backend_ca, None, url), ALICE)
        self.assertIn(f"token exchange: POST {url} failed", why)
        self.assertIn("certificate verify failed", why)
        # The user's token went nowhere.
        self.assertEqual(self.tokens.forms, [])
