"""How findings print, the exit status, and the whole diagnosis in memory."""

from __future__ import annotations

import contextlib
import io
import os

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from aigw import cli
from aigw.config import (
    EX_CONFIG,
    BackendAuthConfig,
    BackendConfig,
    ClientCredentialsConfig,
    TokenExchangeConfig,
)
from aigw.doctor.command import diagnose
from aigw.doctor.findings import exit_status, fail, format_findings, ok, warn
from aigw.doctor.sessionkey import KeyFiles
from tests.fakes import FakeTransport
from tests.unit.auth.helpers import FakeAuthorizationServer, gateway_config


class FormatTests(SynchronousTestCase):
    def test_lines(self) -> None:
        text = format_findings(
            [ok("a", "fine"), warn("b", "hmm", "do x"), fail("c", "bad", "do y")]
        )
        self.assertEqual(
            text, "ok    a: fine\nwarn  b: hmm\n  fix: do x\nFAIL  c: bad\n  fix: do y\n"
        )

    def test_exit_status(self) -> None:
        self.assertEqual(exit_status([ok("a", ""), warn("b", "", "")]), 0)
        self.assertEqual(exit_status([ok("a", ""), fail("b", "", "")]), 1)


class DiagnoseTests(SynchronousTestCase):
    def test_order(self) -> None:
        transport = FakeTransport("files")
        transport.answer("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}})
        http = StubTreq(FakeAuthorizationServer())
        d = ensureDeferred(
            diagnose(gateway_config(None), http, Clock(), {"files": transport}, KeyFiles())
        )
        for _ in range(3):
            http.flush()
        checks = [(f.verdict, f.check) for f in self.successResultOf(d)]
        self.assertEqual(
            checks,
            [
                ("ok", "config"),
                ("warn", "auth"),
                ("ok", "backend files"),
                ("ok", "tools files"),
                ("warn", "session key"),
                ("warn", "public url"),
            ],
        )


class RefusesTheClient(Resource):
    """A token endpoint that does not know aigw (RFC 6749 §5.2)."""

    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        request.setResponseCode(401)
        request.setHeader(b"Content-Type", b"application/json")
        return b'{"error": "invalid_client"}'


class TokenModesTests(SynchronousTestCase):
    def test_the_token_endpoint_first_and_the_backend_only_if_it_gives(self) -> None:
        """A ``token_exchange`` backend is not asked at all (no user token to exchange);
        a ``client_credentials`` one only once its token endpoint gives a token."""
        endpoint = "https://as.example/token"
        cc = ClientCredentialsConfig(client_id="a", client_secret="s", token_endpoint=endpoint)
        tx = TokenExchangeConfig(token_endpoint=endpoint, client_id="a", client_secret="s")
        backends = tuple(
            BackendConfig(name=name, url=f"http://{name}.internal/mcp", auth=auth)
            for name, auth in (
                ("cc", BackendAuthConfig(client_credentials=cc)),
                ("tx", BackendAuthConfig(token_exchange=tx)),
            )
        )
        transport = FakeTransport("cc")
        server = StubTreq(RefusesTheClient())
        config = gateway_config(None, backends=backends)
        d = ensureDeferred(
            diagnose(
                config,
                StubTreq(FakeAuthorizationServer()),
                Clock(),
                {"cc": transport},
                KeyFiles(),
                token_servers={"cc": server, "tx": server},
            )
        )
        found = [(f.verdict, f.check) for f in self.successResultOf(d)]
        self.assertEqual(found[2:4], [("FAIL", "credentials cc"), ("FAIL", "credentials tx")])
        self.assertEqual(transport.requests, [])


class CommandLineTests(SynchronousTestCase):
    def test_config_problems_exit_78(self) -> None:
        path = self.mktemp()
        with open(path, "w") as handle:
            handle.write("listen: 3\n")
        self.assertEqual(cli.main(["doctor", path]), EX_CONFIG)

    def test_help_says_warnings_do_not_fail(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertRaises(SystemExit):
            cli.main(["doctor", "--help"])
        self.assertIn("warnings do not fail", " ".join(out.getvalue().split()))

    def test_missing_file_exit_78(self) -> None:
        self.assertEqual(cli.main(["doctor", os.path.join(self.mktemp(), "none.yaml")]), EX_CONFIG)
