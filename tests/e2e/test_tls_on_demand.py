"""TLS is loaded when a config needs it (aigw/tls.py): an https backend, with its own CA
file, is served whether it is in the file at start or added by a reload to a gateway that
started without TLS, through the official SDK client (MCP 2025-11-25 basic/transports)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certificates import write_self_signed

from .aigw import backend_yaml, edit_and_reload, start_gateway
from .harness.oauth_client import connect_plain
from .harness.results import text_of
from .harness.upstreams import Upstream, start_pyserver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    return write_self_signed(str(tmp_path))


@pytest.fixture
def secure(certificate: tuple[str, str]) -> Iterator[Upstream]:
    """The ``mcp`` SDK server over https, its certificate its own CA."""
    upstream = start_pyserver(tls=certificate)
    try:
        yield upstream
    finally:
        upstream.stop()


async def test_an_https_backend_in_the_file_at_start(
    secure: Upstream, certificate: tuple[str, str]
) -> None:
    assert secure.url.startswith("https://")
    gateway = start_gateway([("secure", secure.url, f"ca_file: {certificate[0]}")])
    try:
        async with connect_plain(gateway.url) as client:
            assert text_of(await client.call_tool("secure__echo", {"text": "tls"})) == "tls"
    finally:
        gateway.stop()


async def test_an_https_backend_added_by_a_reload_to_a_gateway_started_without_tls(
    pyserver: Upstream, secure: Upstream, certificate: tuple[str, str]
) -> None:
    gateway = start_gateway([("py", pyserver.url)])
    try:
        async with connect_plain(gateway.url) as client:
            assert text_of(await client.call_tool("py__echo", {"text": "plain"})) == "plain"
        backends = [("py", pyserver.url), ("secure", secure.url, f"ca_file: {certificate[0]}")]

        def add_secure(text: str) -> str:
            head, _, rest = text.partition("backends:\n")
            return head + backend_yaml(backends) + rest[rest.index("sessions:") :]

        edit_and_reload(gateway, add_secure)
        assert "backends added secure" in gateway.process.log(), gateway.process.log_tail()
        async with connect_plain(gateway.url) as client:
            assert text_of(await client.call_tool("secure__echo", {"text": "tls"})) == "tls"
            assert text_of(await client.call_tool("py__echo", {"text": "plain"})) == "plain"
    finally:
        gateway.stop()


async def test_an_https_backend_signed_by_another_ca_is_refused(secure: Upstream) -> None:
    """No ca_file: the system's roots, which do not include the test's own CA."""
    gateway = start_gateway([("secure", secure.url)])
    try:
        async with connect_plain(gateway.url) as client:
            tools = [tool.name for tool in (await client.list_tools()).tools]
        assert "secure__echo" not in tools
        assert "certificate verify failed" in gateway.process.log(), gateway.process.log_tail()
    finally:
        gateway.stop()
