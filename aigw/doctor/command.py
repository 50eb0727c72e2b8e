"""``aigw doctor CONFIG``: load the config, run every check, print the findings.

The checks that talk to the network run at once, each bounded in time; findings
print in a fixed order: config, authorization server, backends, limits store (with
``limits.redis_url``), session key, public URL.  Exit 0 when nothing failed (warnings
do not fail), 1 when something did, 78 (EX_CONFIG) when the config itself has
problems, printed as ``aigw check`` prints them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from typing import Any

from twisted.internet import task
from twisted.internet.defer import ensureDeferred
from twisted.web.client import HTTPConnectionPool

from aigw.config import (
    EX_CONFIG,
    BackendConfig,
    Config,
    ConfigError,
    format_problems,
    load_config,
)
from aigw.doctor.authserver import check_authorization_server
from aigw.doctor.backends import check_backend, check_user_oauth
from aigw.doctor.findings import EXIT_FAILED, Finding, exit_status, format_findings, ok
from aigw.doctor.limits_store import check_limits_store
from aigw.doctor.public import check_public_url
from aigw.doctor.sessionkey import KeyFiles, check_session_key, key_files_of
from aigw.doctor.sessions_store import check_sessions_store
from aigw.doctor.tokens import check_token_endpoint
from aigw.httpjson import Clock, HTTPClient, TreqClient
from aigw.upstream.api import UpstreamTransport
from aigw.upstream.factory import build_transport
from aigw.upstream.token_endpoint import token_server_client
from aigw.upstream.user_authorization import oauth_clients

#: How long the checks of aigw's own URL and of the authorization server may take
#: when the config does not say (``auth.http_timeout``).
DEFAULT_TIMEOUT = 10.0


async def diagnose(
    config: Config,
    http: HTTPClient,
    clock: Clock,
    transports: dict[str, UpstreamTransport],
    keys: KeyFiles,
    oauth: Mapping[str, tuple[HTTPClient, HTTPClient]] | None = None,
    token_servers: Mapping[str, HTTPClient] | None = None,
) -> list[Finding]:
    """Every finding about ``config``'s live set-up, in the order they print.  A
    ``user_oauth`` backend is asked with its ``oauth`` clients (to it, to its
    authorization server), the token endpoint of a ``client_credentials`` or
    ``token_exchange`` backend with its ``token_servers`` client (each with the trust
    its config gives), else with ``http``."""
    oauth = oauth or {}
    token_servers = token_servers or {}

    async def check_one(b: BackendConfig) -> list[Finding]:
        findings = []
        if b.auth is not None and (b.auth.client_credentials or b.auth.token_exchange):
            server = token_servers.get(b.name, http)
            findings.append(await check_token_endpoint(b, server, clock))
            if findings[0].verdict == "FAIL":
                return findings  # the backend would fail for the same reason
        if b.name in transports:
            limit = b.connect_timeout + b.timeout
            return findings + await check_backend(b, transports[b.name], clock, limit)
        if b.auth is not None and b.auth.user_oauth is not None:
            findings += await check_user_oauth(b, oauth.get(b.name, (http, http)), clock)
        return findings

    timeout = config.auth.http_timeout if config.auth is not None else DEFAULT_TIMEOUT
    authority = ensureDeferred(check_authorization_server(config, http, clock))
    backends = [ensureDeferred(check_one(b)) for b in config.backends]
    public = ensureDeferred(check_public_url(config, http, clock, timeout))
    store = ensureDeferred(check_limits_store(config.limits, clock, timeout))
    ended = ensureDeferred(check_sessions_store(config.sessions, clock, timeout))
    # All run at once; awaited in the order the findings print.
    findings = [ok("config", f"{config.source} loads"), *(await authority)]
    for backend in backends:
        findings += await backend
    findings += [found for found in (await store, await ended) if found is not None]
    inline = config.sessions.secret is not None and keys.current is None
    findings.append(check_session_key(keys.current, inline))
    findings += [check_session_key(path, False, "old session key") for path in keys.old]
    findings.append(await public)
    return findings


async def _main(reactor: Any, config: Config, config_path: str) -> int:
    pool = HTTPConnectionPool(reactor, persistent=False)
    http = TreqClient(reactor, pool, DEFAULT_TIMEOUT)
    # A user_oauth or token_exchange backend answers only with a user's token: the check
    # is of its authorization server (discovery; the token endpoint).
    transports = {
        b.name: build_transport(b, reactor)
        for b in config.backends
        if b.auth is None or not (b.auth.user_oauth or b.auth.token_exchange)
    }
    oauth = {
        b.name: oauth_clients(b, reactor)
        for b in config.backends
        if b.auth is not None and b.auth.user_oauth is not None
    }
    token_servers = {
        b.name: client
        for b in config.backends
        if (client := token_server_client(b, reactor)) is not None
    }
    keys = key_files_of(config_path)
    try:
        findings = await diagnose(config, http, reactor, transports, keys, oauth, token_servers)
    finally:
        for transport in transports.values():
            await transport.close()
    sys.stdout.write(format_findings(findings))
    return exit_status(findings)


def doctor(config_path: str) -> int:
    """Load the config (78 and its problems, as ``aigw check``, when it has some), then
    run the checks under ``task.react``; the exit status."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        sys.stderr.write(format_problems(error) + "\n")
        return EX_CONFIG
    status = [EXIT_FAILED]  # what an unexpected error in a check gives

    async def main(reactor: Any) -> None:
        status[0] = await _main(reactor, config, config_path)

    with contextlib.suppress(SystemExit):  # react exits; the status is ours
        task.react(lambda reactor: ensureDeferred(main(reactor)))
    return status[0]
