"""MCP clients that log in through OAuth, for the gateway end-to-end tests.

Python: :func:`connect` uses the official ``mcp`` 2.x client (``mcp.Client`` over
``streamable_http_client`` with an ``httpx2.AsyncClient`` whose ``auth`` is
``mcp.client.auth.OAuthClientProvider``). The provider discovers the protected
resource metadata and the AS, registers dynamically, and hands the authorization URL
to ``redirect_handler``; ours performs the headless login of :mod:`.login` over HTTP
and keeps the code, which ``callback_handler`` then returns with ``state`` and
``iss``. Tokens live in :class:`MemoryTokenStorage` (pass the same storage again to
reuse tokens or the registered client).

TypeScript: :func:`run_ts_client` drives ``e2e/ts-client.mjs`` (``@modelcontextprotocol/sdk``
1.x client) in a subprocess and returns its JSON lines.

Example::

    async with connect(gateway_url, "alice") as client:
        tools = await client.list_tools()
        result = await client.call_tool("everything__echo", {"message": "hi"})
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from .login import USERS, authorize
from .processes import E2E_DIR, node_executable

# Never contacted: the headless login stops at the redirect to it.
DEFAULT_REDIRECT_URI = "http://127.0.0.1:9/callback"


@dataclass
class MemoryTokenStorage(TokenStorage):
    """In-memory ``TokenStorage``; share one instance to reuse tokens across connects."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class HeadlessLogin:
    """``redirect_handler`` + ``callback_handler`` pair that logs ``user`` in over HTTP."""

    user: str
    password: str | None = None
    authorization_urls: list[str] = field(default_factory=list)
    _pending: AuthorizationCodeResult | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        response = await authorize(authorization_url, self.user, self.password)
        self._pending = AuthorizationCodeResult(
            code=response.code, state=response.state, iss=response.iss
        )

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self._pending is None:
            raise RuntimeError("callback_handler called before redirect_handler")
        result, self._pending = self._pending, None
        return result


def make_oauth_provider(
    url: str,
    user: str,
    password: str | None = None,
    *,
    storage: MemoryTokenStorage | None = None,
    scope: str | None = None,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    login: HeadlessLogin | None = None,
) -> tuple[OAuthClientProvider, MemoryTokenStorage, HeadlessLogin]:
    """An ``OAuthClientProvider`` for ``url`` that logs ``user`` in headlessly.

    ``login.authorization_urls`` records every authorization URL the SDK opened (so a
    test can tell a refresh from a new login).
    """
    storage = storage if storage is not None else MemoryTokenStorage()
    if login is None:
        login = HeadlessLogin(user, password if password is not None else USERS.get(user))
    metadata = OAuthClientMetadata.model_validate(
        {
            "client_name": f"aigw-e2e-python-{user}",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": scope,
        }
    )
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=login.redirect_handler,
        callback_handler=login.callback_handler,
    )
    return provider, storage, login


@asynccontextmanager
async def connect(
    url: str,
    user: str,
    password: str | None = None,
    *,
    storage: MemoryTokenStorage | None = None,
    scope: str | None = None,
    login: HeadlessLogin | None = None,
    mode: str = "auto",
    http_timeout: float = 30.0,
    transport: httpx2.AsyncBaseTransport | None = None,
    **client_kwargs: Any,
) -> AsyncIterator[Client]:
    """An initialized ``mcp.Client`` for ``url``, logged in as ``user`` through OAuth.

    ``client_kwargs`` go to ``mcp.Client`` (``sampling_callback``,
    ``elicitation_callback``, ``message_handler``, ``read_timeout_seconds``...).
    ``mode="legacy"`` forces the ``initialize`` handshake (no ``server/discover`` probe).
    Pass the same ``storage`` again to reuse the tokens and the registered client.
    ``transport``: how the client's requests are sent (default: as addressed).
    """
    provider, _, _ = make_oauth_provider(
        url, user, password, storage=storage, scope=scope, login=login
    )
    timeout = httpx2.Timeout(http_timeout)
    async with (
        httpx2.AsyncClient(auth=provider, timeout=timeout, transport=transport) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **client_kwargs) as client,
    ):
        yield client


@asynccontextmanager
async def connect_plain(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    mode: str = "auto",
    http_timeout: float = 30.0,
    transport: httpx2.AsyncBaseTransport | None = None,
    **client_kwargs: Any,
) -> AsyncIterator[Client]:
    """An initialized ``mcp.Client`` without OAuth (optionally with fixed headers, over
    ``transport``: ``routing.py``)."""
    timeout = httpx2.Timeout(http_timeout)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout, transport=transport) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **client_kwargs) as client,
    ):
        yield client


def ts_client_argv(
    url: str,
    user: str,
    password: str | None = None,
    *,
    call: str | None = None,
    args: dict[str, Any] | None = None,
    script: Sequence[dict[str, Any]] | None = None,
    sampling: bool = False,
    extra_argv: Sequence[str] = (),
) -> list[str]:
    """The command line of ``e2e/ts-client.mjs`` (see that script for the options)."""
    argv = [
        node_executable(),
        str(E2E_DIR / "ts-client.mjs"),
        "--url",
        url,
        "--user",
        user,
        "--password",
        password if password is not None else USERS.get(user, ""),
    ]
    if call is not None:
        argv += ["--call", call, "--args", json.dumps(args or {})]
    if script is not None:
        argv += ["--script", json.dumps(list(script))]
    if sampling:
        argv.append("--sampling")
    return argv + list(extra_argv)


def run_ts_client(
    url: str, user: str, *, timeout: float = 60.0, **options: Any
) -> list[dict[str, Any]]:
    """Run ``e2e/ts-client.mjs`` and return its JSON lines (see that script for the events);
    ``options`` are those of :func:`ts_client_argv`.

    Raises ``subprocess.CalledProcessError`` (with stdout/stderr) on a non-zero exit.
    """
    argv = ts_client_argv(url, user, **options)
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
    return lines


class TsClientRun:
    """``e2e/ts-client.mjs`` running with a ``{"op": "pause"}`` in its script: read its
    events up to the pause (:meth:`until`), act, then :meth:`resume` and :meth:`finish`."""

    def __init__(self, argv: list[str], timeout: float = 60.0) -> None:
        self.argv = argv
        self.deadline = time.monotonic() + timeout
        self.events: list[dict[str, Any]] = []
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def until(self, event: str) -> list[dict[str, Any]]:
        """Events read until (and with) the first ``event`` (bounded by the timeout)."""
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, self.deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith("{"):
                self.events.append(json.loads(line))
                if self.events[-1]["event"] == event:
                    return self.events
        raise AssertionError(f"ts-client: no {event!r} event; got {self.events}")

    def resume(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write("\n")
        self.popen.stdin.flush()

    def finish(self) -> list[dict[str, Any]]:
        """Wait for the exit; all events (CalledProcessError on a non-zero exit)."""
        self.popen.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        while (line := self._lines.get(timeout=5)) is not None:
            if line.startswith("{"):
                self.events.append(json.loads(line))
        if self.popen.returncode != 0:
            assert self.popen.stderr is not None
            err = self.popen.stderr.read()
            raise subprocess.CalledProcessError(self.popen.returncode, self.argv, "", err)
        return self.events

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)
