"""Upstream TLS is verified (service-identity), with an optional private CA file."""

from __future__ import annotations

import os

from twisted.internet import ssl
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.server import Site

from aigw.config import BackendConfig
from tests.certificates import write_self_signed
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import GatewayTestCase, initialize_message
from tests.unit.memory import run


def self_signed(directory: str) -> tuple[str, ssl.PrivateCertificate]:
    cert_file, key_file = write_self_signed(directory)
    with open(cert_file, "rb") as cert, open(key_file, "rb") as key:
        return cert_file, ssl.PrivateCertificate.loadPEM(cert.read() + key.read())


class UpstreamTLSTests(GatewayTestCase):
    def start_tls_upstream(self) -> tuple[str, str]:
        """A fake upstream behind TLS with a certificate of its own CA; its URL, the CA file."""
        directory = self.mktemp()
        os.makedirs(directory)
        ca_file, certificate = self_signed(directory)
        site = Site(FakeUpstream(), reactor=self.reactor)
        tls = TLSMemoryBIOFactory(certificate.options(), False, site, clock=self.reactor)
        port = self.network.serve(tls)
        return f"https://localhost:{port}/mcp", os.path.abspath(ca_file)

    @run
    async def test_upstream_signed_by_the_configured_ca_is_trusted(self) -> None:
        url, ca_file = self.start_tls_upstream()
        await self.start_gateway_with(
            BackendConfig(name="secure", url=url, ca_file=ca_file, timeout=5)
        )
        session = await self.initialize()
        body = await self.call(
            session, "tools/call", {"name": "secure__echo", "arguments": {"x": 1}}
        )
        self.assertIn("result", body)

    @run
    async def test_upstream_with_an_unknown_certificate_is_refused(self) -> None:
        url, _ = self.start_tls_upstream()
        await self.start_gateway_with(BackendConfig(name="secure", url=url, timeout=5))
        _, body = await self.post(initialize_message("2025-11-25", 1))
        self.assertIn("error", body)
