"""Session fixtures for the end-to-end tests: the test AS and the upstream MCP servers.

Each fixture starts its process once per session and stops it at the end (and the
harness's ``atexit`` hook stops anything left behind). Set ``AIGW_E2E_SKIP=1`` to
skip every test that needs them; a missing ``node`` skips the Node-based fixtures.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from .aigw import Gateway, start_gateway
from .harness.authserver import AuthServer, start_auth_server
from .harness.processes import Process, ensure_node_modules
from .harness.upstreams import (
    Upstream,
    start_pyserver,
    start_server_everything,
    start_twisted_upstream,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test with real helper processes")


def _need_node() -> None:
    if os.environ.get("AIGW_E2E_SKIP"):
        pytest.skip("AIGW_E2E_SKIP is set")
    if shutil.which(os.environ.get("AIGW_E2E_NODE", "node")) is None:
        pytest.skip("node is not installed")


@pytest.fixture
def anyio_backend() -> str:
    """The MCP SDK clients run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def node_modules() -> None:
    _need_node()
    ensure_node_modules()


@pytest.fixture(scope="session")
def auth_server(node_modules: None) -> Iterator[AuthServer]:
    """``e2e/as.mjs`` with test control on, alice and bob, 600 s access tokens."""
    server = start_auth_server(test_control=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server_everything(node_modules: None) -> Iterator[Upstream]:
    upstream = start_server_everything()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture(scope="session")
def pyserver() -> Iterator[Upstream]:
    """The stateful pyserver (sessions), default tool set."""
    if os.environ.get("AIGW_E2E_SKIP"):
        pytest.skip("AIGW_E2E_SKIP is set")
    upstream = start_pyserver()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture
def own_pyserver() -> Iterator[Upstream]:
    """A stateful pyserver of this test's own, whose counts and tools no other test moves."""
    upstream = start_pyserver()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture(scope="session")
def pyserver_stateless() -> Iterator[Upstream]:
    """The pyserver in stateless mode (no ``Mcp-Session-Id``)."""
    if os.environ.get("AIGW_E2E_SKIP"):
        pytest.skip("AIGW_E2E_SKIP is set")
    upstream = start_pyserver(stateless=True)
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture(scope="session")
def pyserver_modern() -> Iterator[Upstream]:
    """The pyserver refusing every era but 2026-07-28 (stateless by that revision)."""
    if os.environ.get("AIGW_E2E_SKIP"):
        pytest.skip("AIGW_E2E_SKIP is set")
    upstream = start_pyserver(stateless=True, modern_only=True)
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture(scope="module")
def eras_gateway(
    server_everything: Upstream,
    pyserver: Upstream,
    pyserver_stateless: Upstream,
    pyserver_modern: Upstream,
) -> Iterator[Gateway]:
    """aigw in front of one upstream of each generation, named as the matrix's
    ``UPSTREAM_LABELS``: everything, py, stateless, modern."""
    started = start_gateway(
        [
            ("everything", server_everything.url),
            ("py", pyserver.url),
            ("stateless", pyserver_stateless.url),
            ("modern", pyserver_modern.url),
        ]
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def pyserver_many_tools() -> Iterator[Upstream]:
    """The pyserver with 30 extra tools and ``tools/list`` pages of 10."""
    if os.environ.get("AIGW_E2E_SKIP"):
        pytest.skip("AIGW_E2E_SKIP is set")
    upstream = start_pyserver(many_tools=True, page_size=10)
    try:
        yield upstream
    finally:
        upstream.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the client x upstream matrix when the run filled it."""
    from .matrix import render

    lines = render()
    if lines:
        terminalreporter.section("MCP interoperability matrix (client x upstream through aigw)")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def faulty() -> Iterator[Process]:
    """``upstreams/faulty.py``, one per test module (its logs are counted per module)."""
    if os.environ.get("AIGW_E2E_SKIP"):
        pytest.skip("AIGW_E2E_SKIP is set")
    process = start_twisted_upstream("faulty")
    try:
        yield process
    finally:
        process.stop()
