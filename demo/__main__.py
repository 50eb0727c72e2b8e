"""``make demo``: the seed's flow on one machine, with the official MCP client.

Starts a local OpenID provider (``e2e/as.mjs``, oidc-provider, standing in for
Keycloak), two MCP servers (server-everything and ``demo/flights.py``) and aigw
with ``etc/aigw/demo.yaml``; then runs the official MCP Python SDK client
through the whole OAuth flow, headless, printing each step.  The stack stays up
for real clients until Ctrl-C; with ``--once`` it checks every step, stops
everything and exits 0 or 1 (``make demo-once``, run by the test suite).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2

from tests.e2e.harness.authserver import start_auth_server
from tests.e2e.harness.oauth_client import HeadlessLogin, MemoryTokenStorage, connect
from tests.e2e.harness.processes import Process, python_executable, start_process
from tests.e2e.harness.upstreams import start_server_everything

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "etc" / "aigw" / "demo.yaml"
GATEWAY = "http://127.0.0.1:1975"
#: ``metrics.listen`` in demo.yaml.
METRICS_URL = "http://127.0.0.1:9464/metrics"
MCP_URL = GATEWAY + "/mcp"
AS_PORT, EVERYTHING_PORT, FLIGHTS_PORT = 8080, 3001, 3002
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "demo", "version": "1"},
    },
}
BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"


class DemoFailed(Exception):
    pass


class Steps:
    """Prints each step like the seed's walkthrough and checks it."""

    def __init__(self, color: bool) -> None:
        self.color = color
        self.number = 0

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    def step(self, title: str) -> None:
        self.number += 1
        print("\n" + self._paint(BOLD, f"[{self.number}] {title}"), flush=True)

    def show(self, text: str) -> None:
        print(textwrap.indent(text, "    "), flush=True)

    def check(self, ok: bool, what: str) -> None:
        mark = self._paint(GREEN, "ok") if ok else self._paint(RED, "FAILED")
        print(f"    {mark}: {what}", flush=True)
        if not ok:
            raise DemoFailed(what)


def claims_of(token: str) -> dict[str, Any]:
    """The JWT's claims, decoded for display only; the demo never prints the token itself."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def start_stack(started: list[Callable[[], Any]]) -> None:
    key = ROOT / ".venv" / "demo-session.key"
    if not key.exists():
        key.parent.mkdir(exist_ok=True)  # a fresh checkout (or worktree) has no .venv/
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
    server = start_auth_server(port=AS_PORT, test_control=False)
    started.append(server.stop)
    print(
        f"  OpenID provider (oidc-provider)  {server.issuer}   "
        "users: alice/alice-password, bob/bob-password"
    )
    everything = start_server_everything(port=EVERYTHING_PORT)
    started.append(everything.stop)
    print(f"  MCP server: server-everything   {everything.url}")
    flights = start_process(
        [python_executable(), "-m", "demo.flights", "--port", str(FLIGHTS_PORT)],
        ready_line_regex=r"^READY ",
        name="flights",
        timeout=30,
    )
    started.append(flights.stop)
    print(f"  MCP server: demo flights        http://127.0.0.1:{FLIGHTS_PORT}/mcp")
    gateway = start_process(
        [
            str(Path(sys.executable).parent / "twistd"),
            "-n",
            "--pidfile=",
            "aigw",
            "--config",
            str(CONFIG),
        ],
        ready_url=GATEWAY + "/healthz",
        name="aigw",
        timeout=30,
    )
    started.append(gateway.stop)
    wait_ready(gateway)
    print(f"  aigw                            {MCP_URL}   (log: {gateway.log_path})")
    print(f"  aigw metrics (Prometheus)       {METRICS_URL}")


def wait_ready(gateway: Process) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if httpx2.get(GATEWAY + "/readyz", timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    raise DemoFailed(f"aigw did not become ready:\n{gateway.log_tail()}")


async def walkthrough(steps: Steps) -> None:
    async with httpx2.AsyncClient(timeout=20) as http:
        steps.step("MCP request without a token")
        bare = await http.post(
            MCP_URL,
            json=INITIALIZE,
            headers={"Accept": "application/json, text/event-stream"},
        )
        challenge = bare.headers.get("www-authenticate", "")
        steps.show(f"HTTP {bare.status_code}\nWWW-Authenticate: {challenge}")
        steps.check(
            bare.status_code == 401 and "resource_metadata=" in challenge,
            "401 with resource_metadata",
        )

        steps.step("Protected resource metadata (RFC 9728)")
        metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
        metadata = (await http.get(metadata_url)).json()
        steps.show(f"GET {metadata_url}\n{json.dumps(metadata, indent=2)}")
        steps.check(metadata.get("resource") == MCP_URL, "resource is the gateway's MCP URL")
        issuer = metadata["authorization_servers"][0]

        steps.step("Authorization server metadata (RFC 8414)")
        as_metadata = (await http.get(issuer + "/.well-known/oauth-authorization-server")).json()
        shown = {
            k: as_metadata.get(k)
            for k in (
                "issuer",
                "authorization_endpoint",
                "token_endpoint",
                "registration_endpoint",
                "code_challenge_methods_supported",
            )
        }
        steps.show(json.dumps(shown, indent=2))
        steps.check("registration_endpoint" in as_metadata, "dynamic client registration offered")

    steps.step("The official MCP Python SDK runs the flow: register, PKCE, log in, token")
    storage = MemoryTokenStorage()
    login = HeadlessLogin("alice", "alice-password")
    async with connect(MCP_URL, "alice", storage=storage, login=login, mode="legacy") as client:
        client_info = await storage.get_client_info()
        steps.show(f"registered client_id: {client_info.client_id if client_info else '?'}")
        steps.show(
            "authorization URL (a browser would open it):\n"
            + login.authorization_urls[0].replace("&", "\n  &")
        )
        steps.show("logged in as alice (headless: the login form posted over HTTP)")
        tokens = await storage.get_tokens()
        steps.check(tokens is not None, "access token received")
        assert tokens is not None
        claims = claims_of(tokens.access_token)
        steps.show(
            "access token claims (decoded, never printed raw):\n"
            + json.dumps(
                {k: claims.get(k) for k in ("iss", "sub", "aud", "scope", "client_id", "exp")},
                indent=2,
            )
        )
        steps.check(claims.get("aud") == MCP_URL, "audience is the gateway (RFC 8707)")

        steps.step("Tools of every upstream server, as <backend>__<tool>")
        tools = await client.list_tools()
        names = [tool.name for tool in tools.tools]
        steps.show("\n".join(f"{i + 1}. {name}" for i, name in enumerate(names)))
        steps.check(
            "flights__search-flight" in names and "everything__echo" in names,
            "both backends listed",
        )

        steps.step("Call flights__search-flight: Los Angeles to San Francisco")
        result = await client.call_tool(
            "flights__search-flight",
            {"fly_from": "Los Angeles", "fly_to": "San Francisco", "departure_date": "10/10/2025"},
        )
        text = "".join(getattr(c, "text", "") for c in result.content)
        steps.show(text[:600] + ("..." if len(text) > 600 else ""))
        steps.check("LAX" in text and "SFO" in text, "flights found through the gateway")

    steps.step("bob lacks the tools:call scope: the flights backend refuses him")
    bob_storage = MemoryTokenStorage()
    async with connect(
        MCP_URL,
        "bob",
        storage=bob_storage,
        login=HeadlessLogin("bob", "bob-password"),
        mode="legacy",
    ) as client:
        bob_tools = [tool.name for tool in (await client.list_tools()).tools]
        steps.show(
            f"bob sees {len(bob_tools)} tools, "
            f"none of flights: {not any(n.startswith('flights__') for n in bob_tools)}"
        )
    bob_tokens = await bob_storage.get_tokens()
    assert bob_tokens is not None
    steps.show(f"bob's scopes: {claims_of(bob_tokens.access_token).get('scope')}")
    async with httpx2.AsyncClient(timeout=20) as http:
        headers = {
            "Authorization": f"Bearer {bob_tokens.access_token}",
            "Accept": "application/json, text/event-stream",
        }
        init = await http.post(
            MCP_URL,
            headers=headers,
            json=INITIALIZE,
        )
        headers["Mcp-Session-Id"] = init.headers["mcp-session-id"]
        headers["MCP-Protocol-Version"] = "2025-11-25"
        refused = await http.post(
            MCP_URL,
            headers=headers,
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "flights__search-flight",
                    "arguments": {
                        "fly_from": "LAX",
                        "fly_to": "SFO",
                        "departure_date": "10/10/2025",
                    },
                },
            },
        )
        steps.show(
            f"HTTP {refused.status_code}\n"
            f"WWW-Authenticate: {refused.headers.get('www-authenticate')}\n{refused.text}"
        )
        steps.check(
            refused.status_code == 403
            and "insufficient_scope" in refused.headers.get("www-authenticate", ""),
            "403 insufficient_scope challenge",
        )


INSTRUCTIONS = f"""
The stack stays up. Try it with Claude Code (yours, or the pinned one of the tests,
e2e/node_modules/.bin/claude), in one folder (the server goes to its local config):

  claude mcp add -t http mcp-gateway {MCP_URL}
  claude mcp list        mcp-gateway: {MCP_URL} (HTTP) - ! Needs authentication
  claude                 then type /mcp, Enter on mcp-gateway, Enter on Authenticate:
                         your browser opens the provider's login page; log in as
                         alice / alice-password; Claude Code says
                         "Signed in and connected to mcp-gateway."
  /mcp, mcp-gateway, View tools: everything__echo, ..., flights__search-flight

or with the MCP Inspector:

  npx @modelcontextprotocol/inspector      transport "Streamable HTTP", URL {MCP_URL}

Log in at the provider's page as alice / alice-password (every tool) or
bob / bob-password (no tools:call: the flights tools are refused).
Ctrl-C stops every process the demo started.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description="aigw end-to-end demo")
    parser.add_argument(
        "--once", action="store_true", help="run the flow, check it, stop, exit 0 or 1"
    )
    args = parser.parse_args()
    steps = Steps(color=sys.stdout.isatty())
    stoppers: list[Callable[[], Any]] = []
    print("Starting the demo stack on 127.0.0.1:")
    try:
        start_stack(stoppers)
        anyio.run(walkthrough, steps)
        print("\nThe whole flow succeeded.")
        if not args.once:
            print(INSTRUCTIONS)
            while True:
                time.sleep(3600)
        return 0
    except DemoFailed as failure:
        print(f"\ndemo failed: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # Stopping is bounded (each process SIGTERMed, then SIGKILLed): a second Ctrl-C
        # meanwhile would cut it short and leave the rest running, each in a process
        # group of its own that the terminal's signal does not reach.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for stop in reversed(stoppers):
            stop()
        print("Stopped everything the demo started.")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
