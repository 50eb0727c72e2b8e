"""Each backend answers ``initialize`` through its real transport, and its tool names fit.

The backend is opened by the gateway's own ``BackendSessions`` (``server/discover``
then ``initialize``, as a client session would), so what the doctor sees is what
aigw will see; then ``tools/list`` pages are read and each name is exposed as
``protocol/names.py`` does.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping
from typing import Any, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import ILogObserver, Logger
from zope.interface import implementer

from aigw.config import BackendConfig
from aigw.doctor.findings import Finding, fail, ok, warn
from aigw.gateway.answers import UpstreamAnswers
from aigw.gateway.backends import BackendSessions
from aigw.gateway.exchange import OwnCollector
from aigw.gateway.selectors import ToolFilter
from aigw.httpjson import Clock, HTTPClient
from aigw.protocol import jsonrpc
from aigw.protocol.names import NAME_SEPARATOR, expose_name
from aigw.protocol.revision import envelope, routing_headers
from aigw.protocol.versions import LATEST_VERSION, is_modern
from aigw.sealed.session_id import BackendSession
from aigw.upstream.api import UpstreamError, UpstreamTransport
from aigw.upstream.protected_resource import DiscoveryFailed, discover

#: Pages of tools/list read at most (a server that pages forever is not followed).
MAX_PAGES = 20


@implementer(ILogObserver)
class _Reasons:
    """Hears why ``BackendSessions.open`` left a backend out (it logs, never raises)."""

    def __init__(self) -> None:
        self.by_backend: dict[str, str] = {}

    def __call__(self, event: Mapping[str, Any]) -> None:
        backend, reason = event.get("backend"), event.get("reason")
        if isinstance(backend, str) and reason is not None:
            self.by_backend[backend] = str(reason)


def _where(config: BackendConfig) -> str:
    return config.url if config.url is not None else f"stdio: {config.command}"


async def _open(
    config: BackendConfig,
    transport: UpstreamTransport,
    clock: Clock,
    ids: Iterator[int],
    answers: UpstreamAnswers,
) -> BackendSession | str:
    reasons = _Reasons()
    sessions = BackendSessions({config.name: transport}, clock, ids, answers)
    sessions.log = Logger(observer=cast(ILogObserver, reasons))
    opened = await sessions.open([config.name], LATEST_VERSION, {}, None)
    if not opened:
        return reasons.by_backend.get(config.name, "no answer")
    return opened[0][0]


async def _tool_names(
    transport: UpstreamTransport,
    session: BackendSession,
    ids: Iterator[int],
    answers: UpstreamAnswers,
) -> list[str]:
    """The names of the backend's tools, page by page; a ping on a page's reply is
    answered as aigw would answer it (``OwnCollector``), so a backend that waits for its
    answer before listing is not taken for a broken one."""
    names: list[str] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {} if cursor is None else {"cursor": cursor}
        headers = None
        version = session.protocol_version
        if is_modern(version):
            params = envelope(params, version, {})
            headers = routing_headers("tools/list", params)
        request_id = next(ids)
        answer = OwnCollector(request_id, answers, transport.name, version, None)
        body = jsonrpc.dumps(jsonrpc.request(request_id, "tools/list", params))
        try:
            await transport.post(
                body, answer.sink, session.session_id, version, answer.attach, headers
            )
        finally:
            answer.detach()
        message = answer.result(transport.name)
        if "error" in message:
            raise UpstreamError(transport.name, "refused", str(message["error"].get("message")))
        result = message.get("result")
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            raise UpstreamError(transport.name, "bad_reply", "tools/list result has no tools")
        names += [
            t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)
        ]
        cursor = result.get("nextCursor") if isinstance(result, dict) else None
        if not isinstance(cursor, str):
            break
    return names


def judge_names(config: BackendConfig, names: list[str]) -> Finding:
    """Exposed names must match ``[A-Za-z0-9_-]{1,64}`` (``protocol/names.py``): one
    that does not fit as ``<backend>__<tool>`` is hashed, which clients then see.
    Only the tools ``backends[].tools`` selects are exposed; a name it includes that
    the server does not list is likely a typo."""
    backend = config.name
    check = f"tools {backend}"
    selected = [name for name in names if ToolFilter(config.tools).allows(name)]
    count = f"{len(names)} tool{'' if len(names) == 1 else 's'}" + (
        f", {len(selected)} selected by tools" if len(selected) != len(names) else ""
    )
    mapped = []
    for name in selected:
        exposed = expose_name(backend, name)
        if exposed != backend + NAME_SEPARATOR + name:
            mapped.append(f"{name!r} -> {exposed}")
    unknown = [name for name in config.tools.include if name not in names]
    if unknown:
        return warn(
            check,
            f"{count}; tools.include names {', '.join(map(repr, unknown))}, "
            "which the server does not list",
            "fix the names in the backend's tools.include",
        )
    if mapped:
        return warn(
            check,
            f"{count}; {len(mapped)} names do not fit <backend>__<tool> "
            f"(64 characters of [A-Za-z0-9_-]) and will be mapped: {'; '.join(mapped)}",
            "clients see the mapped names; shorten the backend name or rename the tools "
            "upstream if readable names matter",
        )
    return ok(check, f"{count}, every name fits {backend}{NAME_SEPARATOR}<tool>")


async def _check(
    config: BackendConfig, transport: UpstreamTransport, clock: Clock
) -> list[Finding]:
    check = f"backend {config.name}"
    ids = itertools.count(1)
    answers = UpstreamAnswers({config.name: transport})
    opened = await _open(config, transport, clock, ids, answers)
    if isinstance(opened, str):
        return [
            fail(
                check,
                f"{_where(config)} did not answer initialize: {opened}",
                "check the backend's url/command and that the server is running",
            )
        ]
    findings = [ok(check, f"{_where(config)} answers, revision {opened.protocol_version}")]
    if "tools" not in opened.capabilities:
        findings.append(ok(f"tools {config.name}", "the server offers no tools"))
    else:
        try:
            findings.append(judge_names(config, await _tool_names(transport, opened, ids, answers)))
        except UpstreamError as error:
            findings.append(
                warn(
                    f"tools {config.name}",
                    f"tools/list failed: {error.detail}",
                    "check the server's logs",
                )
            )
    if opened.session_id is not None:
        with contextlib.suppress(UpstreamError):  # else the session expires on its own
            await transport.delete(opened.session_id, opened.protocol_version)
    return findings


def check_backend(
    config: BackendConfig, transport: UpstreamTransport, clock: Clock, limit: float
) -> Deferred[list[Finding]]:
    """One backend's findings within ``limit`` seconds."""
    d = ensureDeferred(_check(config, transport, clock))

    def timed_out(result: object, seconds: float) -> list[Finding]:
        return [
            fail(
                f"backend {config.name}",
                f"{_where(config)}: no answer within {seconds:g} s",
                "check that the server is running and answers MCP requests",
            )
        ]

    d.addTimeout(limit, clock, onTimeoutCancel=timed_out)  # type: ignore[arg-type]
    return d


async def check_user_oauth(
    config: BackendConfig, clients: tuple[HTTPClient, HTTPClient], clock: Clock
) -> list[Finding]:
    """A ``user_oauth`` backend answers only with a user's own token; what aigw needs of it
    first is its authorization server, learnt from its 401 (RFC 9728, RFC 8414), with
    PKCE S256, and a client: configured, or registered there (RFC 7591).  ``clients``:
    to the backend and to its authorization server, trusting what the gateway's do
    (``upstream.user_authorization.oauth_clients``)."""
    check = f"backend {config.name}"
    assert config.url is not None
    assert config.auth is not None
    assert config.auth.user_oauth is not None
    uo = config.auth.user_oauth
    try:
        server = await discover(clients[0], clients[1], clock, config.url, uo.timeout)
    except DiscoveryFailed as error:
        return [
            fail(
                check,
                f"user_oauth: {error}",
                "the backend must answer 401 with resource_metadata (or serve "
                "/.well-known/oauth-protected-resource) naming its authorization server",
            )
        ]
    client = "the configured client_id" if uo.client_id else "dynamic registration"
    if uo.client_id is None and server.registration_endpoint is None:
        return [
            fail(
                check,
                f"user_oauth: {server.issuer} offers no dynamic registration",
                "register aigw there and set auth.user_oauth.client_id (and client_secret_file)",
            )
        ]
    return [ok(check, f"user_oauth: authorization server {server.issuer}, {client}, PKCE S256")]
