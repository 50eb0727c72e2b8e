"""aigw's TLS client endpoints (aigw/tls.py): what Twisted's default Agent endpoints give,
with the TLS loaded on first use.  Held back, then loaded: tests/process/test_tls_on_demand.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported

from aigw import tls
from tests.certificates import write_private_ca


def endpoint(url: bytes) -> object:
    return tls.AgentEndpoints(MemoryReactorClock(), 3.0).endpointForURI(URI.fromBytes(url))


def test_http_is_a_hostname_endpoint() -> None:
    assert isinstance(endpoint(b"http://as.example:8080/jwks"), HostnameEndpoint)


def test_an_address_is_connected_as_it_is() -> None:
    """No resolver thread for an IP literal (what ``upstream/connection.py`` does too)."""
    assert isinstance(endpoint(b"http://127.0.0.1:8080/jwks"), TCP4ClientEndpoint)
    assert isinstance(endpoint(b"http://[::1]:8080/jwks"), TCP6ClientEndpoint)


def test_https_is_verified_tls_over_a_hostname_endpoint() -> None:
    made = endpoint(b"https://as.example/jwks")
    assert isinstance(made, tls.TLSEndpoint)


def test_other_schemes_are_refused() -> None:
    with pytest.raises(SchemeNotSupported):
        endpoint(b"ftp://as.example/jwks")


def test_holding_back_after_pyopenssl_was_imported_is_a_no_op() -> None:
    """This test process imported it already (Twisted's endpoints above did)."""
    assert not tls.hold_back()
    assert not tls.held_back()


def test_a_hosts_tls_settings_are_made_once(tmp_path: Path) -> None:
    """``ca_file`` is read and parsed for a host's first connection, not for each (the
    clients of authorization servers keep no connections: one per request)."""
    ca_file, _, _ = write_private_ca(str(tmp_path))
    endpoints = tls.AgentEndpoints(MemoryReactorClock(), 3.0, ca_file)
    first = endpoints.endpointForURI(URI.fromBytes(b"https://as.example/token"))
    os.remove(ca_file)  # read again, it would fail
    again = endpoints.endpointForURI(URI.fromBytes(b"https://as.example/jwks"))
    assert isinstance(first, tls.TLSEndpoint)
    assert isinstance(again, tls.TLSEndpoint)
    assert again._creator is first._creator
