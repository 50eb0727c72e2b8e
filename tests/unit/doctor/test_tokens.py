"""``aigw doctor`` on a ``client_credentials`` or ``token_exchange`` backend: its token
endpoint, asked over real TLS (in memory) with the trust the gateway's requests have."""

from __future__ import annotations

from aigw.config import (
    BackendAuthConfig,
    BackendConfig,
    ClientCredentialsConfig,
    TokenExchangeConfig,
)
from aigw.doctor.findings import Finding
from aigw.doctor.tokens import check_token_endpoint
from aigw.upstream.token_endpoint import server_client
from aigw.upstream.token_exchange import GRANT_TYPE
from tests.unit.memory import run
from tests.unit.upstream.private_ca import CA, Document, PrivateCATestCase

MINTED = {"access_token": "minted", "token_type": "Bearer", "expires_in": 300}
#: Keycloak's answers to an exchange without a subject token (aigw/doctor/tokens.py): the
#: standard token exchange (V2) for a client whose switch is on, or off; the legacy (V1).
V2_ON = "Parameter 'subject_token' required for standard token exchange"
V2_OFF = "Standard token exchange is not enabled for the requested client"
V1 = "For more on this error consult the server log."


class TokenEndpointDoctorTests(PrivateCATestCase):
    def setUp(self) -> None:
        super().setUp()
        self.tokens = Document({}, lambda form: MINTED)

    async def finding(self, signer: CA, mode: str) -> Finding:
        """The doctor's finding on a backend whose private CA is ``backend_ca``, of a
        token endpoint whose certificate ``signer`` made."""
        url = self.serve(self.tokens, signer) + "/token"
        config: ClientCredentialsConfig | TokenExchangeConfig
        if mode == "client_credentials":
            config = ClientCredentialsConfig(
                client_id="aigw", client_secret="s", token_endpoint=url
            )
        else:
            config = TokenExchangeConfig(token_endpoint=url, client_id="aigw", client_secret="s")
        backend = BackendConfig(
            name="crm",
            url="https://crm.example/mcp",
            ca_file=self.backend_ca.file,
            auth=BackendAuthConfig(**{mode: config}),
        )
        http = server_client(backend, config.ca_file, config.timeout, self.reactor)
        return await check_token_endpoint(backend, http, self.reactor)

    @run
    async def test_client_credentials_gets_a_token_trusting_the_backends_ca(self) -> None:
        found = await self.finding(self.backend_ca, "client_credentials")
        self.assertEqual((found.verdict, found.check), ("ok", "credentials crm"))
        self.assertIn("client_credentials: a token from https://127.0.0.1:", found.seen)

    @run
    async def test_client_credentials_of_another_ca_fails(self) -> None:
        found = await self.finding(self.server_ca, "client_credentials")
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("certificate verify failed", found.seen)
        self.assertIn("auth.client_credentials", found.fix or "")

    @run
    async def test_token_exchange_is_asked_without_a_subject_token(self) -> None:
        """No user here: a refusal for the missing subject token proves the rest."""
        self.tokens.status = 400
        self.tokens.posted = lambda form: {"error": "invalid_request"}
        found = await self.finding(self.backend_ca, "token_exchange")
        self.assertEqual(found.verdict, "ok")
        self.assertIn("invalid_request to an exchange without a subject token", found.seen)
        (form,) = self.tokens.forms
        self.assertEqual(form, {b"grant_type": [GRANT_TYPE.encode()]})

    @run
    async def test_token_exchange_refusing_the_client_fails(self) -> None:
        self.tokens.status = 401
        self.tokens.posted = lambda form: {"error": "invalid_client"}
        found = await self.finding(self.backend_ca, "token_exchange")
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("invalid_client", found.seen)

    @run
    async def test_token_exchange_of_another_ca_fails(self) -> None:
        found = await self.finding(self.server_ca, "token_exchange")
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("certificate verify failed", found.seen)
        self.assertEqual(self.tokens.forms, [])

    async def keycloak(self, status: int, answer: dict[str, str]) -> Finding:
        self.tokens.status = status
        self.tokens.posted = lambda form: answer
        return await self.finding(self.backend_ca, "token_exchange")

    @run
    async def test_keycloak_v2_with_the_clients_exchange_on_passes(self) -> None:
        """StandardTokenExchangeProvider.supports: the client may exchange, the subject
        token is what is missing."""
        found = await self.keycloak(400, {"error": "invalid_request", "error_description": V2_ON})
        self.assertEqual(found.verdict, "ok")
        self.assertIn("invalid_request to an exchange without a subject token", found.seen)

    @run
    async def test_keycloak_v2_with_the_clients_exchange_off_fails(self) -> None:
        """The same invalid_request, whose description says the client may not exchange."""
        found = await self.keycloak(400, {"error": "invalid_request", "error_description": V2_OFF})
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn(V2_OFF, found.seen)
        self.assertIn("'aigw'", found.fix or "")
        self.assertIn('"Standard token exchange"', found.fix or "")

    @run
    async def test_keycloak_v1_failing_without_a_user_warns(self) -> None:
        """V1 takes the request and fails on the missing user session: HTTP 500
        unknown_error, after the client authenticated; nothing more can be known."""
        found = await self.keycloak(500, {"error": "unknown_error", "error_description": V1})
        self.assertEqual(found.verdict, "warn")
        self.assertIn("HTTP 500: unknown_error", found.seen)
        self.assertIn("legacy token exchange (V1)", found.seen)

    @run
    async def test_another_server_error_fails(self) -> None:
        found = await self.keycloak(500, {"error": "server_error"})
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("HTTP 500: server_error", found.seen)
