"""An MCP server on the official ``mcp`` SDK speaking stdio, for e2e tests of stdio backends.

Run: ``python -m tests.e2e.upstreams.stdio_server`` (MCP basic/transports "stdio": one
JSON-RPC message per line on stdin and stdout).  It writes a line on stderr as it
starts (aigw logs it).  Tools: ``echo``, ``pid`` (this process's id, so a test can
kill it), ``env`` (the value of one environment variable, or ``<unset>``), ``count``
(a counter kept by this process: one per user under ``stdio.scope: user``), ``hold``
(in flight, a progress notification sent, until ``roots`` or ``ping`` has run, 20 s at
most), ``roots`` (asks its caller ``roots/list``; what came back, said as text) and
``ping`` (pings its peer, basic/utilities/ping; what came back, said as text).
"""

from __future__ import annotations

import os
import sys

import anyio
import mcp_types as types
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer(name="aigw-e2e-stdio", version="1.0.0")
COUNT = {"value": 0}
#: Set once ``roots`` or ``ping`` has its answer (made in the server's event loop, on
#: first use).
ASKED: list[anyio.Event] = []


@server.tool()
def echo(text: str) -> str:
    """Answer with the text."""
    return text


@server.tool()
def pid() -> str:
    """The id of this process."""
    return str(os.getpid())


@server.tool()
def env(name: str) -> str:
    """The value of an environment variable of this process."""
    return os.environ.get(name, "<unset>")


@server.tool()
def count() -> str:
    """Add one to this process's counter; its new value."""
    COUNT["value"] += 1
    return str(COUNT["value"])


def _asked() -> anyio.Event:
    if not ASKED:
        ASKED.append(anyio.Event())
    return ASKED[0]


@server.tool()
async def hold(ctx: Context) -> str:
    """In flight until ``roots`` or ``ping`` has run (20 s at most); a progress
    notification first, so that the caller knows it is."""
    asked = _asked()
    await ctx.report_progress(0, 1, "holding")
    with anyio.move_on_after(20):
        await asked.wait()
    return "released" if asked.is_set() else "gave up"


@server.tool()
async def roots(ctx: Context) -> str:
    """Ask the caller roots/list, in association with this call (SEP-2260); the answer,
    or the error's code and data, as text."""
    try:
        result = await ctx.request_context.session.send_request(
            types.ListRootsRequest(), types.ListRootsResult, request_read_timeout_seconds=10
        )
    except MCPError as error:
        return f"error {error.code} {error.data}"
    finally:
        _asked().set()
    return "roots: " + " ".join(str(root.uri) for root in result.roots)


@server.tool()
async def ping(ctx: Context) -> str:
    """Ping the peer (basic/utilities/ping: it MUST answer promptly with an empty
    result); what came back, or the error's code and data, as text."""
    try:
        with anyio.fail_after(10):
            result = await ctx.request_context.session.send_ping()
    except MCPError as error:
        return f"error {error.code} {error.data}"
    except TimeoutError:
        return "no answer within 10 s"
    finally:
        _asked().set()
    return f"pong {result.model_dump(exclude_none=True)}"


def main() -> None:
    print(f"stdio server {os.getpid()} starting", file=sys.stderr, flush=True)
    server.run("stdio")


if __name__ == "__main__":
    main()
