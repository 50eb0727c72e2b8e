"""Certificates for 127.0.0.1 and localhost, for the tests that serve TLS: one that is
its own CA, or a private CA and a server certificate it signed."""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_self_signed(directory: str) -> tuple[str, str]:
    """``cert.pem`` (its own CA: what a client's ``ca_file`` names) and ``key.pem``
    written in ``directory``; their absolute paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = _server(_builder(name, name, key), ca=True).sign(key, hashes.SHA256())
    return _write(directory, "", cert, key)


def write_private_ca(directory: str) -> tuple[str, str, str]:
    """A private CA (``ca.pem``: what a client's ``ca_file`` names) and a server
    certificate it signed (``server.pem``, ``server-key.pem``), in ``directory``;
    their absolute paths.  The CA's own key is not kept."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aigw test private CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = _server(_builder(name, ca_name, key), ca=False).sign(ca_key, hashes.SHA256())
    ca_path = os.path.abspath(os.path.join(directory, "ca.pem"))
    with open(ca_path, "wb") as handle:
        handle.write(ca.public_bytes(serialization.Encoding.PEM))
    return (ca_path, *_write(directory, "server", cert, key))


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _server(builder: x509.CertificateBuilder, *, ca: bool) -> x509.CertificateBuilder:
    """For 127.0.0.1 and localhost."""
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    return builder.add_extension(x509.SubjectAlternativeName(names), critical=False).add_extension(
        x509.BasicConstraints(ca=ca, path_length=None), critical=True
    )


def _write(
    directory: str, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[str, str]:
    cert_path = os.path.abspath(os.path.join(directory, f"{stem or 'cert'}.pem"))
    key_path = os.path.abspath(os.path.join(directory, f"{stem + '-' if stem else ''}key.pem"))
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.chmod(key_path, 0o600)
    return cert_path, key_path
