"""Upstream TLS is verified (service-identity), with an optional private CA file."""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import ssl
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.server import Site

from aigw.config import BackendConfig
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import GatewayTestCase, initialize_message
from tests.unit.memory import run


def self_signed(directory: str) -> tuple[str, ssl.PrivateCertificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = os.path.join(directory, "ca.pem")
    with open(path, "wb") as handle:
        handle.write(cert_pem)
    return path, ssl.PrivateCertificate.loadPEM(cert_pem + key_pem)


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
