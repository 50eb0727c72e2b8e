"""FastMCP proxy peer for the benchmark (run in bench/.venvs/fastmcp).

Its fastest configuration: ONE upstream client session, connected before the
proxy starts and reused for every call (FastMCP's default opens a new upstream
session per call), JSON responses instead of SSE, and a JWTVerifier checking
the same kind of token as aigw (RS256 against the same JWKS, issuer, audience).

    python fastmcp_proxy.py --port P --upstream URL --issuer ISS \
        --jwks-uri URI --audience AUD
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.server import create_proxy
from fastmcp.server.auth.providers.jwt import JWTVerifier


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--jwks-uri", required=True)
    p.add_argument("--audience", required=True)
    p.add_argument("--no-auth", action="store_true")
    args = p.parse_args()
    logging.getLogger().setLevel(logging.WARNING)

    auth = None
    if not args.no_auth:
        auth = JWTVerifier(
            jwks_uri=args.jwks_uri,
            issuer=args.issuer,
            audience=args.audience,
            algorithm="RS256",
        )
    client = Client(StreamableHttpTransport(args.upstream))
    async with client:  # connected: the proxy reuses this one session
        proxy = create_proxy(client, name="bench-fastmcp-proxy", auth=auth)
        await proxy.run_http_async(
            show_banner=False,
            transport="http",
            host="127.0.0.1",
            port=args.port,
            path="/mcp",
            log_level="warning",
            json_response=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
