"""aigw's TLS client endpoints (aigw/tls.py): what Twisted's default Agent endpoints give,
with the TLS loaded on first use.  Held back, then loaded: tests/process/test_tls_on_demand.py."""

from __future__ import annotations

import pytest
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported

from aigw import tls


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
