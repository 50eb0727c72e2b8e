"""Claude Code, the real CLI from npm, connects to aigw and logs in through OAuth.

``@anthropic-ai/claude-code`` is pinned in ``e2e/package.json`` (2.1.332: a native binary
from the platform package, e.g. ``@anthropic-ai/claude-code-linux-x64``, that npm installs
like any optional dependency). No model is involved and nothing leaves 127.0.0.1: Claude
Code runs with a throwaway ``HOME`` whose ``~/.claude.json`` is pre-seeded (onboarding
done, the project folder trusted, the fake API key approved), ``ANTHROPIC_BASE_URL`` on a
closed local port, telemetry, error reporting, the auto-updater and non-essential traffic
off, and (found with ``strace -f -e trace=connect``) the official plugin marketplace's
clone from GitHub, the model catalog download and the installation checks off
(:func:`offline_env`): then its only connections are to 127.0.0.1.

The stack is ``make demo``'s programs on free ports: ``e2e/as.mjs`` (oidc-provider, alice
and bob, access tokens of one hour, well over the 300 s before expiry at which Claude
Code refreshes), server-everything as backend ``everything``, ``demo/flights.py`` as
backend ``flights`` with ``required_scopes: [tools:call]`` (bob lacks that scope), aigw.

For each user, in a fresh ``HOME``:

1. ``claude mcp add -t http mcp-gateway <url>`` prints
   ``Added HTTP MCP server mcp-gateway with URL: <url> to local config``;
2. ``claude mcp list`` prints ``mcp-gateway: <url> (HTTP) - ! Needs authentication``;
3. interactive ``claude`` in a pseudo-terminal (:mod:`.harness.terminal`: a pty and a
   pyte screen): the start screen says ``1 MCP server needs authentication · run /mcp``;
   ``/mcp`` Enter lists ``mcp-gateway`` with ``needs sign-in``; Enter opens the server
   (``Status: ⚠ needs sign-in``, the menu's pointer, U+276F, on ``Authenticate``); Enter
   shows ``Waiting for you to sign in with your browser…`` and runs ``$BROWSER
   <authorization URL>``: the headless browser (:mod:`.harness.browser`) logs the user
   in at the AS and GETs the redirect to Claude Code's loopback
   ``http://localhost:<port>/callback``; Claude Code then shows
   ``Signed in and connected to mcp-gateway.``;
4. ``/mcp`` again: ``✔ mcp-gateway   N tools``; Enter: ``Status: ✔ connected``,
   ``Auth: ✔ authenticated``, the pointer on ``View tools``; Enter: ``Tools for
   mcp-gateway``, ``N tools`` and one row per tool, named ``<backend>__<tool>``: alice
   sees both backends' tools (15), bob none of ``flights`` (13);
5. ``claude mcp list`` prints ``mcp-gateway: <url> (HTTP) - ✔ Connected``.

Also seen with 2.1.332: Claude Code registers itself (RFC 7591), asks for
``scope=mcp:tools tools:call offline_access`` with ``prompt=consent`` and ``resource`` =
the gateway's URL, and speaks protocol 2026-07-28 to aigw (``Protocol: 2026-07-28`` on the
server's screen). The whole module takes about 30 s.

Skipped, with the reason, only when the package is not installed and the npm registry
cannot be reached (``npm ping``); installed or reachable, every failure is a failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from .aigw import Gateway, start_gateway
from .harness import browser
from .harness.authserver import AuthServer, start_auth_server
from .harness.processes import (
    E2E_DIR,
    NODE_MODULES,
    Process,
    ensure_node_modules,
    free_port,
    python_executable,
    start_process,
)
from .harness.terminal import ENTER, Terminal
from .harness.upstreams import start_server_everything

pytestmark = pytest.mark.timeout(150)

PACKAGE = "@anthropic-ai/claude-code"
CLAUDE = NODE_MODULES / ".bin" / "claude"
SERVER = "mcp-gateway"
FAKE_API_KEY = "sk-ant-api03-aigw-e2e-fake-key-0000000000000000"
#: The backends of the gateway started here that each user may see.
VISIBLE = {"alice": {"everything", "flights"}, "bob": {"everything"}}
#: The pointer of Claude Code's menus before the selected row.
POINTER = "\N{HEAVY RIGHT-POINTING ANGLE QUOTATION MARK ORNAMENT}"
TOOL_NAME = re.compile(rf"^\s*(?:{POINTER}\s*)?([a-z0-9-]+__[A-Za-z0-9_-]+)", re.MULTILINE)


def _pinned_version() -> str:
    package = json.loads((E2E_DIR / "package.json").read_text())
    return str(package["dependencies"][PACKAGE])


def _npm_unreachable() -> str | None:
    """Why the npm registry cannot be reached, or None when it answers ``npm ping``."""
    try:
        ping = subprocess.run(
            ["npm", "ping", "--fetch-retries=0", "--fetch-timeout=20000"],
            capture_output=True,
            text=True,
            timeout=40,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"npm ping: {exc!r}"
    if ping.returncode != 0:
        return f"npm ping exited {ping.returncode}: {(ping.stdout + ping.stderr).strip()[-500:]}"
    return None


def offline_env(home: Path) -> dict[str, str]:
    """Claude Code's environment: ``home`` as ``HOME``, no model and no network.

    No model is needed to connect, log in and list tools: a closed local port as the
    API, a fake key, nothing non-essential. Nothing else of the test's environment
    (proxies, the coding client's variables) is passed on.
    """
    return {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # What 2.1.332 still reaches out for at start (seen with strace): the official
        # plugin marketplace (git clone from GitHub, ssh -T git@github.com), the
        # published model catalog, installation and update checks.
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        "CLAUDE_CODE_MODEL_CATALOG_URL": (home / "no-model-catalog.json").as_uri(),
        "DISABLE_INSTALLATION_CHECKS": "1",
        "DISABLE_UPDATES": "1",
        "DISABLE_GROWTHBOOK": "1",
        "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL": "1",
    }


@pytest.fixture(scope="module")
def claude(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The pinned Claude Code CLI in e2e/node_modules (installed by ``npm ci``)."""
    if os.environ.get("AIGW_E2E_SKIP"):
        pytest.skip("AIGW_E2E_SKIP is set")
    try:
        ensure_node_modules()
    except (OSError, subprocess.SubprocessError) as exc:
        reason = _npm_unreachable()
        if reason is not None:
            pytest.skip(f"{PACKAGE} is not installed and npm cannot be reached ({reason})")
        raise AssertionError(f"npm ci failed although the registry answers: {exc!r}") from exc
    if not CLAUDE.exists():
        reason = _npm_unreachable()
        if reason is not None:
            pytest.skip(f"{PACKAGE} is not installed and npm cannot be reached ({reason})")
        raise AssertionError(f"{CLAUDE} missing after npm ci in {E2E_DIR}")
    version = subprocess.run(
        [str(CLAUDE), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        stdin=subprocess.DEVNULL,
        env=offline_env(tmp_path_factory.mktemp("claude-version").resolve()),
    ).stdout
    assert version.startswith(f"{_pinned_version()} (Claude Code)"), version
    return str(CLAUDE)


@dataclass
class Stack:
    auth_server: AuthServer
    gateway: Gateway


@pytest.fixture(scope="module")
def stack(claude: str) -> Iterator[Stack]:
    """``make demo``'s programs on free ports: the AS, everything, flights, aigw."""
    started: list[Process] = []
    try:
        # Claude Code refreshes a token once fewer than 300 s remain: one hour here.
        auth_server = start_auth_server(access_token_ttl=3600, test_control=False)
        started.append(auth_server.process)
        everything = start_server_everything()
        started.append(everything.process)
        flights_port = free_port()
        flights = start_process(
            [python_executable(), "-m", "demo.flights", "--port", str(flights_port)],
            ready_line_regex=r"^READY ",
            name="flights",
            timeout=30,
        )
        started.append(flights)
        gateway = start_gateway(
            [
                ("everything", everything.url),
                (
                    "flights",
                    f"http://127.0.0.1:{flights_port}/mcp",
                    "required_scopes: [tools:call]",
                ),
            ],
            issuer=auth_server.issuer,
        )
        started.append(gateway.process)
        yield Stack(auth_server, gateway)
    finally:
        for process in reversed(started):
            process.stop(timeout=15)


class ClaudeHome:
    """A throwaway ``HOME`` for Claude Code with a project folder, and how to run it there."""

    def __init__(self, root: Path, claude: str, user: str) -> None:
        self.claude = claude
        self.home = root.resolve() / "home"
        # Claude Code keys ~/.claude.json's projects by the folder's real path.
        self.project = self.home / "project"
        self.project.mkdir(parents=True)
        self.browser = browser.install(root / "browser", user)
        self.seed()
        self.env = offline_env(self.home) | {"BROWSER": str(self.browser.script)}

    def seed(self) -> None:
        """Onboarding done, the project trusted, the API key approved: no first-run dialogs."""
        config = {
            "hasCompletedOnboarding": True,
            "theme": "dark",
            "customApiKeyResponses": {"approved": [FAKE_API_KEY[-20:]], "rejected": []},
            "projects": {str(self.project): {"hasTrustDialogAccepted": True}},
        }
        (self.home / ".claude.json").write_text(json.dumps(config, indent=2))

    def run(self, *args: str, timeout: float = 60) -> str:
        """``claude ARGS`` (not interactive) in the project folder; its output."""
        result = subprocess.run(
            [self.claude, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=self.project,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        output = result.stdout + result.stderr
        command = " ".join(args)
        assert result.returncode == 0, f"claude {command} exited {result.returncode}:\n{output}"
        return output

    def terminal(self) -> Terminal:
        """Interactive ``claude`` in a 120 x 60 pseudo-terminal."""
        return Terminal([self.claude], env=self.env, cwd=self.project, name="claude")


def _open_mcp_menu(term: Terminal) -> None:
    term.send("/mcp")
    term.wait_for("Manage MCP servers")
    term.send(ENTER)
    term.wait_for(re.compile(r"^\s*MCP servers$", re.MULTILINE))


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_claude_code_logs_in_and_lists_the_tools_the_user_may_use(
    claude: str, stack: Stack, tmp_path: Path, user: str
) -> None:
    url = stack.gateway.url
    home = ClaudeHome(tmp_path, claude, user)

    added = home.run("mcp", "add", "-t", "http", SERVER, url)
    assert f"Added HTTP MCP server {SERVER} with URL: {url} to local config" in added, added
    listed = home.run("mcp", "list")
    assert f"{SERVER}: {url} (HTTP) - ! Needs authentication" in listed, listed

    with home.terminal() as term:
        term.wait_for("1 MCP server needs authentication · run /mcp", timeout=30)
        _open_mcp_menu(term)
        term.wait_for(re.compile(rf"{POINTER} ⚠ {SERVER}\s+needs sign-in"))
        term.send(ENTER)
        term.wait_for(re.compile(r"Status:\s+⚠ needs sign-in"))
        term.wait_for(re.compile(rf"{POINTER} Authenticate"))
        term.send(ENTER)
        term.wait_for(f"Signed in and connected to {SERVER}.", timeout=40)

        visits = home.browser.visits()
        assert len(visits) == 1, visits
        visit = visits[0]
        assert "error" not in visit, visit["error"]
        assert visit["user"] == user
        assert visit["url"].startswith(f"{stack.auth_server.issuer}/auth?"), visit
        query = parse_qs(urlsplit(visit["url"]).query)
        assert query["resource"] == [url], query  # RFC 8707: the gateway's MCP URL
        assert query["code_challenge_method"] == ["S256"], query
        assert re.match(r"http://localhost:\d+/callback\?code=", visit["redirect"]), visit
        assert visit["callback_status"] == 200, visit

        _open_mcp_menu(term)
        count = int(term.wait_for(re.compile(rf"{POINTER} ✔ {SERVER}\s+(\d+) tools")).group(1))
        term.send(ENTER)
        term.wait_for(re.compile(r"Status:\s+✔ connected"))
        term.wait_for(re.compile(r"Auth:\s+✔ authenticated"))
        term.wait_for(re.compile(rf"{POINTER} View tools"))
        term.send(ENTER)
        term.wait_for(re.compile(rf"Tools for {SERVER}\s+{count} tools"))
        term.wait_until(lambda text: len(TOOL_NAME.findall(text)) >= count, f"{count} tool rows")
        names = TOOL_NAME.findall(term.screen())
        assert len(names) == count, term.failure(f"{count} tools announced, rows: {names}")
        backends = {name.split("__", 1)[0] for name in names}
        assert backends == VISIBLE[user], term.failure(f"{user} sees backends {backends}")
        assert "everything__echo" in names
        if "flights" in VISIBLE[user]:
            assert "flights__search-flight" in names
        else:
            assert not any(name.startswith("flights__") for name in names)

    listed = home.run("mcp", "list")
    assert f"{SERVER}: {url} (HTTP) - ✔ Connected" in listed, listed


def test_make_demo_shows_the_claude_code_commands_driven_here() -> None:
    """``make demo``'s closing text names the commands and phrases this module checks."""
    from demo.__main__ import INSTRUCTIONS, MCP_URL

    for expected in (
        f"claude mcp add -t http {SERVER} {MCP_URL}",
        f"{SERVER}: {MCP_URL} (HTTP) - ! Needs authentication",
        "/mcp, Enter on mcp-gateway, Enter on Authenticate",
        "alice / alice-password",
        f'"Signed in and connected to {SERVER}."',
        "View tools: everything__echo, ..., flights__search-flight",
    ):
        assert expected in INSTRUCTIONS, expected
