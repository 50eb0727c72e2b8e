"""``client_credentials`` and ``token_exchange`` at an authorization server behind a
private CA, end to end: its token endpoint trusted with the mode's ``ca_file``, else the
backend's; a certificate of another CA fails the call closed, naming the endpoint.

Parts: the user's authorization server (``e2e/as.mjs``, plain http: aigw's
``auth.issuer``); the backend's, ``https`` with a certificate the private CA signed,
sharing the user's server's signing key so that it takes the user's tokens as RFC 8693
subject tokens (``--exchange-issuer``); the upstream, the ``mcp`` SDK server checking
the backend server's tokens itself (its JWKS fetched trusting the private CA), whose
``whoami-headers`` tool answers with the headers it received; the official MCP Python
SDK as the client; ``aigw doctor``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from mcp import MCPError

from tests.certificates import write_private_ca, write_self_signed

from .aigw import Gateway, aigw_command, start_gateway
from .harness.authserver import AuthServer, start_auth_server, write_signing_key
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.processes import LOG_DIR
from .harness.results import text_of
from .harness.upstreams import Upstream, start_pyserver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

CLIENT_ID = "aigw-upstream"
#: UPSTREAM_CREDENTIALS (aigw/protocol/jsonrpc.py): no credentials for the backend.
CREDENTIALS_ERROR = -32015


@pytest.fixture(scope="module")
def private_ca() -> tuple[str, str, str]:
    """The CA file, a certificate for 127.0.0.1 it signed, that certificate's key."""
    return write_private_ca(tempfile.mkdtemp(prefix="aigw-token-ca-", dir=LOG_DIR))


@pytest.fixture(scope="module")
def servers(private_ca: tuple[str, str, str]) -> Iterator[tuple[AuthServer, AuthServer]]:
    """The user's authorization server and the backend's (``https``, private CA), one key."""
    key = write_signing_key(tempfile.mkdtemp(prefix="aigw-token-ca-key-", dir=LOG_DIR))
    users = start_auth_server(jwks_file=key)
    try:
        private = start_auth_server(
            jwks_file=key, tls=private_ca[1:], exchange_issuers=(users.issuer,)
        )
        try:
            yield users, private
        finally:
            private.stop()
    finally:
        users.stop()


@pytest.fixture(scope="module")
def upstream(
    servers: tuple[AuthServer, AuthServer], private_ca: tuple[str, str, str]
) -> Iterator[Upstream]:
    """Accepts only tokens of the backend's authorization server, for itself."""
    started = start_pyserver(auth_issuer=servers[1].issuer, ca_file=private_ca[0])
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def gateway(
    servers: tuple[AuthServer, AuthServer], upstream: Upstream, pyserver: Upstream
) -> Iterator[Callable[[str, str], Gateway]]:
    """Starts gateways whose backends ``cc`` and ``tx`` (one per mode) are the upstream,
    each with ``backend_keys`` (YAML lines of the backend) and ``mode_keys`` (added to
    the mode's mapping), and ``plain`` (no auth) beside them: a session opens when they
    fail; stopped at the end."""
    users, private = servers
    secret = tempfile.mkstemp(prefix="aigw-token-ca-secret-", dir=LOG_DIR)[1]
    with open(secret, "w") as handle:
        handle.write("aigw-upstream-secret\n")
    client = (
        f"client_id: {CLIENT_ID}, client_secret_file: {secret}, scope: mcp:tools, "
        f"resource: '{upstream.url}'"
    )
    started: list[Gateway] = []

    def start(backend_keys: str, mode_keys: str) -> Gateway:
        cc = f"client_credentials: {{issuer: '{private.issuer}', {client}{mode_keys}}}"
        tx = f"token_exchange: {{token_endpoint: '{private.token_endpoint}', {client}{mode_keys}}}"
        backends = [
            (name, upstream.url, f"{backend_keys}auth:\n  {mode}\n")
            for name, mode in (("cc", cc), ("tx", tx))
        ]
        backends.append(("plain", pyserver.url, ""))
        started.append(start_gateway(backends, issuer=users.issuer))
        return started[-1]

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


async def call(gateway: Gateway, backend: str) -> dict[str, Any] | MCPError:
    """alice's call of ``whoami-headers`` at ``backend``: the headers the upstream
    received, or the error the call was answered with."""
    async with connect(gateway.url, "alice", storage=MemoryTokenStorage(), mode="legacy") as client:
        try:
            result = await client.call_tool(f"{backend}__whoami-headers", {})
        except MCPError as error:
            return error
    headers: dict[str, Any] = json.loads(text_of(result))
    return headers


def minted(headers: dict[str, Any] | MCPError) -> dict[str, Any]:
    """The claims of the token the upstream received (and accepted: it checks them)."""
    assert not isinstance(headers, MCPError), headers
    scheme, _, token = headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def doctor_lines(gateway: Gateway) -> dict[str, str]:
    """``aigw doctor``'s finding lines by check (``credentials cc``, ``backend cc``...)."""
    done = await aigw_command("doctor", gateway.config_path)
    lines = done.stdout.decode().splitlines()
    return {
        line[6:].split(": ", 1)[0]: line for line in lines if line[:4] in ("ok  ", "warn", "FAIL")
    }


async def assert_both_modes_work(
    gateway: Gateway, servers: tuple[AuthServer, AuthServer], upstream: Upstream
) -> None:
    """Each mode's token comes from the private server, for the upstream, which took it."""
    private = servers[1]
    cc = minted(await call(gateway, "cc"))
    assert (cc["iss"], cc["aud"], cc["sub"]) == (private.issuer, upstream.url, CLIENT_ID)
    tx = minted(await call(gateway, "tx"))
    assert (tx["iss"], tx["aud"], tx["sub"]) == (private.issuer, upstream.url, "alice")
    assert tx["act"] == {"sub": CLIENT_ID}
    found = await doctor_lines(gateway)
    for check in ("credentials cc", "credentials tx", "backend cc"):
        assert found[check].startswith("ok"), found
    assert f"a token from the token endpoint of {private.issuer}" in found["credentials cc"]
    assert "invalid_request to an exchange without a subject token" in found["credentials tx"]


async def test_the_backends_ca_file_by_default(
    gateway: Callable[[str, str], Gateway],
    servers: tuple[AuthServer, AuthServer],
    upstream: Upstream,
    private_ca: tuple[str, str, str],
) -> None:
    """No ``ca_file`` in the mode: the backend's is trusted at its token endpoint (and the
    issuer's RFC 8414 metadata, where ``client_credentials`` learns it)."""
    assert servers[1].issuer.startswith("https://")
    started = gateway(f"ca_file: {private_ca[0]}\n", "")
    await assert_both_modes_work(started, servers, upstream)


async def test_the_modes_own_ca_file(
    gateway: Callable[[str, str], Gateway],
    servers: tuple[AuthServer, AuthServer],
    upstream: Upstream,
    private_ca: tuple[str, str, str],
) -> None:
    """The mode's ``ca_file``, the backend having none (its connection: the system's)."""
    started = gateway("", f", ca_file: {private_ca[0]}")
    await assert_both_modes_work(started, servers, upstream)


async def test_another_ca_fails_closed(
    gateway: Callable[[str, str], Gateway],
    servers: tuple[AuthServer, AuthServer],
    private_ca: tuple[str, str, str],
) -> None:
    """The mode's ``ca_file`` naming another CA (over the backend's, which would do): the
    call is answered with the credentials error naming the backend, its token endpoint
    (or the issuer's metadata) and the verification failure, before anything is sent
    upstream (unit: ``test_token_credentials_tls``); the doctor fails."""
    private = servers[1]
    other = write_self_signed(tempfile.mkdtemp(prefix="aigw-token-other-ca-", dir=LOG_DIR))[0]
    started = gateway(f"ca_file: {private_ca[0]}\n", f", ca_file: {other}")
    for backend, endpoint in (
        ("cc", f"GET {private.issuer}/.well-known/"),
        ("tx", f"POST {private.token_endpoint} failed"),
    ):
        error = await call(started, backend)
        assert isinstance(error, MCPError), error
        assert error.code == CREDENTIALS_ERROR, error
        data = error.error.data
        assert (data["backend"], data["reason"]) == (backend, "credentials")
        assert endpoint in data["detail"], data
        assert "certificate verify failed" in data["detail"], data
    found = await doctor_lines(started)
    for check in ("credentials cc", "credentials tx"):
        assert found[check].startswith("FAIL"), found
        assert "certificate verify failed" in found[check], found
    assert "backend cc" not in found
