"""What authenticates the gateway to a backend: StaticHeaders, and Upstream asking per request."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.principal import ANONYMOUS, Principal
from aigw.upstream.api import UpstreamError
from aigw.upstream.client import Upstream
from aigw.upstream.credentials import StaticHeaders
from tests.fakes import FakeCredentials

ALICE = Principal("https://as.example", "alice", "cli", frozenset(), {}, None, None)
BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()


class StaticHeadersTests(SynchronousTestCase):
    def headers(self, credentials: StaticHeaders, principal: Principal | None) -> Any:
        return self.successResultOf(ensureDeferred(credentials.headers(principal)))

    def test_configured_headers_as_wire_fields(self) -> None:
        credentials = StaticHeaders({"X-Api-Key": "k1", "X-Tenant": "café"})
        self.assertEqual(
            self.headers(credentials, ALICE),
            ((b"X-Api-Key", b"k1"), (b"X-Tenant", b"caf\xe9")),
        )

    def test_encoded_once_and_the_same_for_every_principal(self) -> None:
        """The hot path hands on one tuple, whoever the request is for."""
        credentials = StaticHeaders({"X-Api-Key": "k1"})
        fields = self.headers(credentials, ALICE)
        self.assertIs(self.headers(credentials, ANONYMOUS), fields)
        self.assertIs(self.headers(credentials, None), fields)

    def test_no_headers(self) -> None:
        self.assertEqual(self.headers(StaticHeaders({}), None), ())


class UpstreamAsksCredentialsTests(SynchronousTestCase):
    """Upstream asks its credentials on every request, with the principal it is made for."""

    def upstream(self, credentials: FakeCredentials) -> tuple[Upstream, MemoryReactorClock]:
        reactor = MemoryReactorClock()
        config = BackendConfig(name="files", url="http://127.0.0.1:9/mcp")
        return Upstream(config, reactor, credentials), reactor

    def test_each_request_asks_with_its_principal(self) -> None:
        credentials = FakeCredentials([(b"X-Api-Key", b"k1")])
        upstream, reactor = self.upstream(credentials)
        posted = ensureDeferred(upstream.post(BODY, lambda message: None, principal=ALICE))
        deleted = ensureDeferred(upstream.delete("s1", None))
        self.assertEqual(credentials.principals, [ALICE, None])
        self.assertEqual(len(reactor.tcpClients), 2)  # both went on to connect
        upstream.connections.close()
        for cancelled in (posted, deleted):
            self.failureResultOf(cancelled, UpstreamError)

    def test_a_credentials_error_fails_the_request_before_connecting(self) -> None:
        refusal = UpstreamError("files", "credentials", "token endpoint down")
        upstream, reactor = self.upstream(FakeCredentials(error=refusal))
        d = ensureDeferred(upstream.post(BODY, lambda message: None, principal=ALICE))
        self.assertIs(self.failureResultOf(d, UpstreamError).value, refusal)
        self.assertEqual(reactor.tcpClients, [])
