"""An MCP server on the official ``mcp`` SDK speaking stdio, for e2e tests of stdio backends.

Run: ``python -m tests.e2e.upstreams.stdio_server`` (MCP basic/transports "stdio": one
JSON-RPC message per line on stdin and stdout).  It writes a line on stderr as it
starts (aigw logs it).  Tools: ``echo``, ``pid`` (this process's id, so a test can
kill it), ``env`` (the value of one environment variable, or ``<unset>``), ``count``
(a counter kept by this process: one per user under ``stdio.scope: user``).
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer(name="aigw-e2e-stdio", version="1.0.0")
COUNT = {"value": 0}


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


def main() -> None:
    print(f"stdio server {os.getpid()} starting", file=sys.stderr, flush=True)
    server.run("stdio")


if __name__ == "__main__":
    main()
