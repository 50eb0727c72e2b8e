"""``auth.user_oauth`` behind a private CA: which certificates each request trusts.

The backend (its 401 and RFC 9728 metadata) is asked trusting the backend's
``ca_file``; its authorization server (RFC 8414 metadata, registration, tokens)
trusting ``auth.user_oauth.ca_file``, the backend's when absent.  Real TLS over the
in-memory network (``private_ca``), each server with a certificate of its own CA;
which request goes through which client: scripted.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendAuthConfig, BackendConfig, UserOAuthConfig
from aigw.httpjson import FetchFailed, HTTPClient, get_json_object
from aigw.sealed.sealer import Sealer
from aigw.upstream.user_authorization import UserAuthorization, oauth_clients
from aigw.upstream.user_links import Grant, UserLinks
from tests.fakes import MemoryStore
from tests.unit.memory import run
from tests.unit.upstream.oauth_backend import ALICE, AS, PRM, PUBLIC, RESOURCE, Backend
from tests.unit.upstream.private_ca import CA, Document, PrivateCATestCase


class PrivateCATests(PrivateCATestCase):
    def clients(self, backend_ca: CA | None, server_ca: CA | None) -> tuple[HTTPClient, HTTPClient]:
        """What aigw asks the backend and its authorization server with, given these keys."""
        config = UserOAuthConfig(ca_file=None if server_ca is None else server_ca.file)
        backend = BackendConfig(
            name="crm",
            url="https://127.0.0.1/mcp",
            ca_file=None if backend_ca is None else backend_ca.file,
            auth=BackendAuthConfig(user_oauth=config),
        )
        return oauth_clients(backend, self.reactor)

    async def fetched(self, http: HTTPClient, signer: CA) -> str:
        """GET a document from a server whose certificate ``signer`` made: "ok", or why not."""
        url = self.serve(Document({"served": True}), signer) + "/doc"
        try:
            await get_json_object(http, self.reactor, url, time_limit=5, max_bytes=1024)
        except FetchFailed as error:
            return str(error)
        return "ok"


class TrustTests(PrivateCATests):
    @run
    async def test_one_private_ca_for_both_by_default(self) -> None:
        """No ``auth.user_oauth.ca_file``: the server trusts what the backend does."""
        to_backend, to_server = self.clients(self.backend_ca, None)
        self.assertEqual(await self.fetched(to_backend, self.backend_ca), "ok")
        self.assertEqual(await self.fetched(to_server, self.backend_ca), "ok")

    @run
    async def test_a_server_of_another_ca_fails_closed_without_its_key(self) -> None:
        _, to_server = self.clients(self.backend_ca, None)
        why = await self.fetched(to_server, self.server_ca)
        self.assertIn("certificate verify failed", why)

    @run
    async def test_each_trusts_its_own_key_only(self) -> None:
        to_backend, to_server = self.clients(self.backend_ca, self.server_ca)
        self.assertEqual(await self.fetched(to_server, self.server_ca), "ok")
        self.assertEqual(await self.fetched(to_backend, self.backend_ca), "ok")
        # The server's key does not make the backend trusted, nor the reverse.
        self.assertIn("certificate verify failed", await self.fetched(to_server, self.backend_ca))
        self.assertIn("certificate verify failed", await self.fetched(to_backend, self.server_ca))

    @run
    async def test_no_ca_file_is_the_systems_roots(self) -> None:
        to_backend, to_server = self.clients(None, None)
        self.assertIn("certificate verify failed", await self.fetched(to_backend, self.backend_ca))
        self.assertIn("certificate verify failed", await self.fetched(to_server, self.backend_ca))


class WhichClientTests(SynchronousTestCase):
    """The backend's own documents through the backend's client; everything of the
    authorization server through the server's (scripted: ``oauth_backend.Backend``)."""

    def test_discovery_registration_and_tokens_each_through_their_client(self) -> None:
        clock = Clock()
        to_backend, to_server = Backend(), Backend()
        links = UserLinks(Sealer.random(), PUBLIC + "/", clock)
        authorization = UserAuthorization(
            "crm",
            RESOURCE,
            UserOAuthConfig(),
            MemoryStore(),
            links,
            to_server.http,
            clock,
            to_backend.http,
        )
        grant = Grant(ALICE.issuer, "alice", "crm", "e1")
        location = self.successResultOf(ensureDeferred(authorization.begin(grant)))
        state = links.open_state(parse_qs(urlsplit(location).query)["state"][0])
        token = self.successResultOf(ensureDeferred(authorization.complete(state, "code")))
        self.successResultOf(ensureDeferred(authorization.refresh(token)))
        self.assertEqual(
            [r.url for r in to_backend.http.requests],
            [RESOURCE, PRM],
        )
        self.assertEqual(
            [r.url for r in to_server.http.requests],
            [
                AS + "/.well-known/oauth-authorization-server",
                AS + "/reg",
                AS + "/token",
                AS + "/token",
            ],
        )
