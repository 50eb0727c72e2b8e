"""``aigw doctor`` on a ``user_oauth`` backend: its authorization server, learnt from it."""

from __future__ import annotations

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendAuthConfig, BackendConfig, UserOAuthConfig
from aigw.doctor.backends import check_user_oauth
from aigw.doctor.findings import Finding
from tests.unit.upstream.oauth_backend import AS, RESOURCE, Backend


class UserOAuthDoctorTests(SynchronousTestCase):
    def finding(self, backend: Backend, config: UserOAuthConfig | None = None) -> Finding:
        auth = BackendAuthConfig(user_oauth=config or UserOAuthConfig())
        checked = check_user_oauth(
            BackendConfig(name="crm", url=RESOURCE, auth=auth),
            (backend.http, backend.http),
            Clock(),
        )
        (found,) = self.successResultOf(ensureDeferred(checked))
        return found

    def test_the_authorization_server_learnt_from_the_backend(self) -> None:
        found = self.finding(Backend())
        self.assertEqual((found.verdict, found.check), ("ok", "backend crm"))
        self.assertIn(AS, found.seen)
        self.assertIn("dynamic registration", found.seen)

    def test_no_metadata_fails_saying_what_the_backend_must_answer(self) -> None:
        backend = Backend()
        backend.resource_document["authorization_servers"] = []
        found = self.finding(backend)
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("names no authorization_servers", found.seen)
        self.assertIn("resource_metadata", found.fix or "")

    def test_no_registration_and_no_client_fails(self) -> None:
        backend = Backend()
        del backend.metadata["registration_endpoint"]
        found = self.finding(backend)
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("client_id", found.fix or "")
        self.assertEqual(self.finding(backend, UserOAuthConfig(client_id="mine")).verdict, "ok")
