"""stdio backends end to end: child processes behind aigw, the official Python SDK client in front.

Backends: a server written with the ``mcp`` SDK run over stdio
(``upstreams/stdio_server.py``) and ``@modelcontextprotocol/server-everything`` in its
stdio mode, both started by aigw on first use (MCP basic/transports "stdio").  They are
listed and called as ``<backend>__<tool>``, killed, and called again once aigw has
started them anew.  ``auth: none`` here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from .aigw import Gateway, open_session, post_json, start_gateway
from .harness.authserver import AuthServer
from .harness.oauth_client import connect, connect_plain
from .harness.processes import LOG_DIR, REPO_ROOT, ensure_node_modules, node_executable
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

STDIO_SERVER = REPO_ROOT / "tests" / "e2e" / "upstreams" / "stdio_server.py"
EVERYTHING = "@modelcontextprotocol/server-everything/dist/index.js"


#: ``limits`` counted in this process (no ``redis_url``): one call of the imported
#: ``whoami-headers`` a minute.
LOCAL_LIMITS = 'limits:\n  rules:\n    - {per: tool, match: "imported__whoami*", rate: 1/m}\n'


def stdio_backends(node_modules: Path) -> str:
    return (
        "  - name: py\n"
        f"    command: {sys.executable}\n"
        f"    args: [{STDIO_SERVER}]\n"
        # ${VAR:-default}, VAR unset in aigw's environment: the default
        '    env: {GREETING: "${AIGW_E2E_NEVER_SET:-hello}"}\n'
        "    timeout: 20s\n"
        "  - name: everything\n"
        f"    command: {node_executable()}\n"
        f"    args: [{node_modules / EVERYTHING}, stdio]\n"
        "    timeout: 20s\n"
        "    tools:\n"
        "      include_regex: ['echo|get-.*|trigger-long-.*']\n"
        "      exclude: [get-env]\n"
        "      exclude_regex: ['get-resource-.*']\n"
    )


@pytest.fixture(scope="module")
def gateway(node_modules: None, pyserver: Upstream) -> Iterator[Gateway]:
    """The two stdio backends, and ``import_mcp_servers``: an MCP client's file naming the
    pyserver over HTTP, as ``imported``."""
    fd, servers = tempfile.mkstemp(prefix="mcp-", suffix=".json", dir=LOG_DIR)
    with os.fdopen(fd, "w") as handle:
        json.dump({"mcpServers": {"imported": {"type": "http", "url": pyserver.url}}}, handle)
    started = start_gateway(
        [],
        more_backends=stdio_backends(ensure_node_modules()),
        extra=f"import_mcp_servers: {servers}\n" + LOCAL_LIMITS,
    )
    try:
        yield started
    finally:
        started.stop()


def children(parent: int) -> dict[int, str]:
    """The live child processes of ``parent``: pid -> command line."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == parent:
            found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


async def call_text(client: object, name: str, arguments: dict[str, object]) -> str:
    return text_of(await client.call_tool(name, arguments))  # type: ignore[attr-defined]


async def call_after_restart(client: object, name: str, arguments: dict[str, object]) -> str:
    """The call once the killed backend is back: at most one clear error on the way."""
    errors: list[str] = []
    for _ in range(2):
        try:
            return await call_text(client, name, arguments)
        except MCPError as error:
            errors.append(str(error))
            await anyio.sleep(0.2)
    raise AssertionError(f"{name} still failing after the restart: {errors}")


async def while_holding(gateway: Gateway, name: str) -> tuple[str, list[str]]:
    """Call ``name`` while ``py__hold`` is in flight at the shared child (two calls: the
    child's request names neither); its text, and what the hold said once released."""
    holding = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        holding.set()

    async with connect_plain(gateway.url, mode="legacy") as client, anyio.create_task_group() as tg:
        held: list[str] = []

        async def hold() -> None:
            result = await client.call_tool("py__hold", {}, progress_callback=on_progress)
            held.append(text_of(result))

        tg.start_soon(hold)
        with anyio.fail_after(30):
            await holding.wait()  # the hold is in flight at the child
        said = await call_text(client, name, {})
    return said, held


async def test_tools_of_stdio_servers_are_listed_and_called(gateway: Gateway) -> None:
    async with connect_plain(gateway.url, mode="legacy") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert {"py__echo", "py__pid", "everything__echo"} <= set(names)
        assert await call_text(client, "py__echo", {"text": "over stdio"}) == "over stdio"
        assert "hi" in await call_text(client, "everything__echo", {"message": "hi"})


async def test_the_servers_of_an_imported_mcp_servers_file_are_served(gateway: Gateway) -> None:
    """``import_mcp_servers``: the servers of a Claude Desktop / Cursor ``mcpServers`` file
    are backends beside the native ones, named as the file names them."""
    async with connect_plain(gateway.url, mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"imported__echo", "py__echo"} <= names
        assert await call_text(client, "imported__echo", {"text": "imported"}) == "imported"


async def test_the_tool_selector_hides_and_refuses_what_it_leaves_out(gateway: Gateway) -> None:
    """``backends[].tools``: ``include_regex`` matched against the whole name, then
    ``exclude`` and ``exclude_regex``, which win; a tool left out is not listed and its
    call is refused as an unknown tool, never forwarded."""
    async with connect_plain(gateway.url, mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        kept = {name for name in names if name.startswith("everything__")}
        assert {"everything__echo", "everything__get-sum"} <= kept
        assert "everything__trigger-long-running-operation" in kept
        assert all(re.fullmatch(r"everything__(echo|get-.*|trigger-long-.*)", n) for n in kept)
        assert "everything__get-env" not in kept
        assert not {n for n in kept if n.startswith("everything__get-resource-")}
        for hidden in ("everything__get-env", "everything__trigger-sampling-request"):
            with pytest.raises(MCPError, match="nknown tool"):
                await client.call_tool(hidden, {})


def test_a_tool_over_its_rate_is_429_with_retry_after(gateway: Gateway) -> None:
    """``limits.rules`` per tool, counted in the process: over the rate, 429 with
    ``Retry-After`` and JSON-RPC -32016 naming the rule, before the backend sees it;
    other tools are not counted."""
    session = open_session(gateway.url)

    def call(number: int, name: str, arguments: dict[str, str]) -> tuple[int, Any, Any]:
        params = {"name": name, "arguments": arguments}
        body = {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}
        return post_json(gateway.url, session, body)

    status, _, body = call(2, "imported__whoami-headers", {})
    assert status == 200, body
    assert "result" in body, body
    status, found, body = call(3, "imported__whoami-headers", {})
    assert status == 429, body
    assert int(found["retry-after"]) >= 1
    assert body["error"]["code"] == -32016
    assert body["error"]["data"]["limit"] == "tool:0"
    status, _, body = call(4, "imported__echo", {"text": "not limited"})
    assert status == 200, body
    assert body["result"]["content"][0]["text"] == "not limited", body


async def test_the_child_gets_its_env_not_the_gateways(gateway: Gateway) -> None:
    async with connect_plain(gateway.url, mode="legacy") as client:
        # from ${AIGW_E2E_NEVER_SET:-hello}: the config's substitution, then the child's env
        assert await call_text(client, "py__env", {"name": "GREETING"}) == "hello"
        # set in aigw's environment by the harness, not passed on
        assert await call_text(client, "py__env", {"name": "PYTHONUNBUFFERED"}) == "<unset>"


async def test_one_process_serves_every_session(gateway: Gateway) -> None:
    async with connect_plain(gateway.url, mode="legacy") as first:
        pid = await call_text(first, "py__pid", {})
        async with connect_plain(gateway.url, mode="legacy") as second:
            assert await call_text(second, "py__pid", {}) == pid


async def test_a_2026_07_28_client_reaches_a_stdio_server(gateway: Gateway) -> None:
    """The stateless client rides on a session aigw keeps on the child for its user."""
    async with connect_plain(gateway.url, mode="2026-07-28") as client:
        assert await call_text(client, "py__echo", {"text": "stateless"}) == "stateless"
        assert "hi" in await call_text(client, "everything__echo", {"message": "hi"})


async def test_progress_from_a_stdio_server_is_relayed(gateway: Gateway) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with connect_plain(gateway.url, mode="legacy") as client:
        result = await client.call_tool(
            "everything__trigger-long-running-operation",
            {"duration": 1, "steps": 3},
            progress_callback=on_progress,
        )
    assert not result.is_error
    assert len(seen) >= 2


async def test_a_shared_process_refuses_a_request_no_single_call_made(gateway: Gateway) -> None:
    """Two calls in flight to the one shared process: the roots/list it asks during one
    of them names no call, so aigw answers it for the client (-32601, data.reason
    ``no_single_call``, as every request no client can take) rather than guess."""
    asked, held = await while_holding(gateway, "py__roots")
    assert asked == "error -32601 {'reason': 'no_single_call'}"
    assert held == ["released"]


async def test_a_ping_during_a_call_is_answered(gateway: Gateway) -> None:
    """basic/utilities/ping: the child's peer, aigw, answers with an empty result, for
    either era's client."""
    for mode in ("legacy", "2026-07-28"):
        async with connect_plain(gateway.url, mode=mode) as client:
            assert await call_text(client, "py__ping", {}) == "pong {}"


async def test_a_shared_processs_ping_no_single_call_made_is_answered(gateway: Gateway) -> None:
    """Two calls in flight to the one shared process: a ping names no call, which a
    request like roots/list is refused for (above); aigw answers the ping itself."""
    pinged, held = await while_holding(gateway, "py__ping")
    assert pinged == "pong {}"
    assert held == ["released"]


async def test_a_killed_sdk_server_is_restarted(gateway: Gateway) -> None:
    async with connect_plain(gateway.url, mode="legacy") as client:
        pid = int(await call_text(client, "py__pid", {}))
        assert pid in children(gateway.process.pid)
        kill_and_wait(pid)
        again = int(await call_after_restart(client, "py__pid", {}))
        assert again != pid
        assert await call_text(client, "py__echo", {"text": "back"}) == "back"
    assert "stdio server" in gateway.process.log()  # its stderr, logged by aigw


async def test_a_killed_server_everything_is_restarted(gateway: Gateway) -> None:
    async with connect_plain(gateway.url, mode="legacy") as client:
        assert "one" in await call_text(client, "everything__echo", {"message": "one"})
        found = [
            pid
            for pid, cmdline in children(gateway.process.pid).items()
            if "server-everything" in cmdline
        ]
        assert len(found) == 1, found
        kill_and_wait(found[0])
        assert "two" in await call_after_restart(client, "everything__echo", {"message": "two"})
        tools = [tool.name for tool in (await client.list_tools()).tools]
        assert "everything__echo" in tools


async def test_children_are_stopped_with_the_gateway(node_modules: None) -> None:
    gateway = start_gateway([], more_backends=stdio_backends(ensure_node_modules()))
    try:
        async with connect_plain(gateway.url, mode="legacy") as client:
            pid = int(await call_text(client, "py__pid", {}))
    finally:
        status = gateway.stop()
    assert status == 0
    assert not alive(pid)


async def test_one_process_per_user(auth_server: AuthServer) -> None:
    """``stdio.scope: user``: each user's calls reach a process of their own."""
    backend = (
        "  - name: mine\n"
        f"    command: {sys.executable}\n"
        f"    args: [{STDIO_SERVER}]\n"
        "    stdio: {scope: user, max_processes: 4}\n"
    )
    gateway = start_gateway([], issuer=auth_server.issuer, more_backends=backend)
    try:
        async with connect(gateway.url, "alice", mode="legacy") as alice:
            assert await call_text(alice, "mine__count", {}) == "1"
            assert await call_text(alice, "mine__count", {}) == "2"
            alice_pid = await call_text(alice, "mine__pid", {})
            async with connect(gateway.url, "bob", mode="legacy") as bob:
                assert await call_text(bob, "mine__count", {}) == "1"
                assert await call_text(bob, "mine__pid", {}) != alice_pid
            assert await call_text(alice, "mine__count", {}) == "3"
    finally:
        gateway.stop()
