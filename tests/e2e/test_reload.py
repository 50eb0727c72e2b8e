"""Live reload (SIGHUP, ``systemctl reload aigw``) with the official Python SDK client
connected: a backend added to the file shows up, one removed is named in its callers'
error, and the connected client hears ``notifications/tools/list_changed`` each time.
Behind the test authorization server, a reload that raises ``auth.required_scopes``
holds the next request of an existing token to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from .aigw import (
    Gateway,
    edit_and_reload,
    mcp_post,
    open_session,
    post_json,
    reload_with,
    start_gateway,
)
from .harness.authserver import AuthServer
from .harness.oauth_client import connect_plain
from .harness.results import text_of
from .harness.tokens import token_for
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def gateway(pyserver: Upstream) -> Iterator[Gateway]:
    started = start_gateway([("py", pyserver.url)])
    try:
        yield started
    finally:
        started.stop()


async def test_reload_adds_then_removes_a_backend_for_a_connected_client(
    gateway: Gateway, pyserver: Upstream, own_pyserver: Upstream
) -> None:
    added = own_pyserver  # a second mcp SDK server, for the reload to add
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with connect_plain(gateway.url, mode="legacy", message_handler=on_message) as client:
        before = [tool.name for tool in (await client.list_tools()).tools]
        assert "py__echo" in before
        assert not any(name.startswith("added__") for name in before)
        await anyio.sleep(1)  # the SDK opens its GET stream once initialized

        reload_with(gateway, [("py", pyserver.url), ("added", added.url)])
        with anyio.fail_after(10):
            await changed.wait()
        after = [tool.name for tool in (await client.list_tools()).tools]
        assert "added__echo" in after
        assert text_of(await client.call_tool("added__echo", {"text": "hi"})) == "hi"

        changed = anyio.Event()
        reload_with(gateway, [("py", pyserver.url)])
        with anyio.fail_after(10):
            await changed.wait()
        with pytest.raises(MCPError) as caught:
            await client.call_tool("added__echo", {"text": "hi"})
        assert caught.value.error.message == "backend 'added' was removed from the configuration"
        assert caught.value.error.data == {"backend": "added", "reason": "removed"}
        assert text_of(await client.call_tool("py__echo", {"text": "still"})) == "still"
    assert "backends added added, removed none" in gateway.process.log()
    assert "backends added none, removed added" in gateway.process.log()
    assert gateway.process.alive
    refuses_a_restart_only_change_whole(gateway, added)


def refuses_a_restart_only_change_whole(gateway: Gateway, added: Upstream) -> None:
    """README "Reload": a file changing a restart-only key (``mcp_path``) is refused whole,
    the backend it also adds included, and the running config keeps serving."""
    before = gateway.process.log().count("reload refused")
    edit_and_reload(
        gateway,
        lambda text: text.replace("mcp_path: /mcp", "mcp_path: /other").replace(
            "backends:\n", f"backends:\n  - name: added\n    url: {added.url}\n", 1
        ),
    )
    log = gateway.process.log()
    assert log.count("reload refused") == before + 1, gateway.process.log_tail()
    assert "reload refused: mcp_path change only with a restart" in log
    session = open_session(gateway.url)  # still /mcp
    listed = post_json(gateway.url, session, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    names = [tool["name"] for tool in listed[2]["result"]["tools"]]
    assert "py__echo" in names
    assert not [name for name in names if name.startswith("added__")]


async def test_reload_raises_the_scopes_an_existing_token_needs(
    auth_server: AuthServer, pyserver: Upstream
) -> None:
    gateway = start_gateway([("py", pyserver.url)], issuer=auth_server.issuer)
    try:
        token = await token_for(auth_server, "alice", gateway.url, "mcp:tools")
        assert mcp_post(gateway, token).status_code == 200
        needed = "  required_scopes: [mcp:tools]\n"
        edit_and_reload(
            gateway,
            lambda text: text.replace(needed, "  required_scopes: [mcp:tools, tools:call]\n"),
        )
        assert "reloaded" in gateway.process.log(), gateway.process.log_tail()
        refused = mcp_post(gateway, token)
        assert refused.status_code == 403, gateway.process.log_tail()
        assert 'scope="mcp:tools tools:call"' in refused.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    finally:
        gateway.stop()
