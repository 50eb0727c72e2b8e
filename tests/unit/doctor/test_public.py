"""The public URL check against a fake aigw served through StubTreq."""

from __future__ import annotations

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.doctor.findings import Finding
from aigw.doctor.public import check_public_url
from tests.unit.auth.helpers import FakeAuthorizationServer, auth_config, gateway_config

PRM = "/.well-known/oauth-protected-resource/mcp"


class PublicURLTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeAuthorizationServer()
        self.server.serve("/healthz", {"status": "alive"})
        self.server.serve(PRM, {"resource": "https://gw.example/mcp"})

    def finding(self, with_auth: bool = True) -> Finding:
        http = StubTreq(self.server)
        config = gateway_config(auth_config() if with_auth else None)
        d = ensureDeferred(check_public_url(config, http, Clock(), 5.0))
        for _ in range(3):
            http.flush()
        return self.successResultOf(d)

    def test_running(self) -> None:
        found = self.finding()
        self.assertEqual(found.verdict, "ok")
        self.assertIn("resource https://gw.example/mcp", found.seen)

    def test_not_running(self) -> None:
        del self.server.answers["/healthz"]
        found = self.finding()
        self.assertEqual(found.verdict, "warn")
        self.assertIn("is aigw running?", found.fix or "")

    def test_another_config(self) -> None:
        self.server.serve(PRM, {"resource": "https://other.example/mcp"})
        self.assertEqual(self.finding().verdict, "FAIL")
        del self.server.answers[PRM]
        self.assertEqual(self.finding().verdict, "FAIL")

    def test_auth_none(self) -> None:
        self.assertEqual(self.finding(with_auth=False).verdict, "ok")
