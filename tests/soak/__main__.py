"""``make soak``: SOAK_SECONDS (60) of SOAK_CLIENTS (50) clients through a real aigw.

    python -m tests.soak        # SOAK_SECONDS, SOAK_CLIENTS, SOAK_WARMUP, SOAK_SETTLE

Everything real and on 127.0.0.1 (the end-to-end harness, ``tests/e2e/harness``): the
test authorization server ``e2e/as.mjs`` with one user per client, each client's
access token got by registration, login and the code flow with PKCE; two upstreams,
``server-everything`` (2025-11-25, sessions) and the ``mcp`` SDK server speaking
2026-07-28 only; and ``twistd -n aigw`` in front of both.  Half the clients speak
2025-11-25 with a GET stream each, half 2026-07-28 with a ``subscriptions/listen``
each (:mod:`tests.soak.clients`).

Measured on the aigw process: its open file descriptors before the first client
(the baseline) and at the end, once the clients hung up and at most SOAK_SETTLE
seconds passed for the upstreams to close their idle keep-alive connections; its
RSS after SOAK_WARMUP seconds of load and at the end.  The criteria and the closing
line are :class:`tests.soak.measure.Figures`'; exit status 1 when one is not met.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable

import httpx2

from tests.e2e.aigw import Gateway, start_gateway
from tests.e2e.harness.authserver import AuthServer, start_auth_server
from tests.e2e.harness.tokens import token_for
from tests.e2e.harness.upstreams import start_pyserver, start_server_everything

from .clients import Call, Client, SessionClient, StatelessClient
from .measure import Figures, Settings, Tally, fd_kinds, open_fds, rss_kib

SCOPE = "mcp:tools tools:call"
CALLS: list[Call] = [("everything__echo", {"message": "soak"}), ("modern__echo", {"text": "soak"})]
#: The call with a progress token crosses the eras: a 2025-11-25 client over the
#: 2026-07-28 server, a 2026-07-28 client over the session-based one.
PROGRESS_CALLS: dict[type[Client], Call] = {
    SessionClient: ("modern__slow", {"seconds": 0.5, "steps": 2}),
    StatelessClient: ("everything__trigger-long-running-operation", {"duration": 0.5, "steps": 2}),
}
#: Logins at the authorization server at once while getting the tokens.
LOGINS = 8
#: Bound on the wait for the clients to finish their last cycle after the end.
WIND_DOWN = 120.0


def say(line: str) -> None:
    print(line, flush=True)


async def tokens(auth: AuthServer, users: list[str], resource: str) -> list[str]:
    """One access token per user, at most ``LOGINS`` logins at a time."""
    gate = asyncio.Semaphore(LOGINS)

    async def one(user: str) -> str:
        async with gate:
            return await token_for(auth, user, resource, SCOPE)

    return list(await asyncio.gather(*(one(user) for user in users)))


async def ready(gateway: Gateway, within: float = 30.0) -> None:
    """``/readyz`` answers 200 once the issuer's keys are loaded (else requests get 503)."""
    deadline = time.monotonic() + within
    async with httpx2.AsyncClient(timeout=5) as http:
        while True:
            response = await http.get(gateway.base + "/readyz")
            if response.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"aigw not ready after {within:.0f}s: {response.text}")
            await asyncio.sleep(0.2)


async def settle(pid: int, baseline: int, within: float) -> int:
    """The open fds of ``pid`` once back to ``baseline``, or after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        fds = open_fds(pid)
        if fds <= baseline or time.monotonic() > deadline:
            return fds
        await asyncio.sleep(0.5)


async def soak(settings: Settings, gateway: Gateway, client_tokens: list[str]) -> Figures:
    pid = gateway.process.pid
    await ready(gateway)
    fds_baseline = open_fds(pid)
    kinds_before = fd_kinds(pid)
    rss_before = rss_kib(pid) / 1024
    say(f"# aigw pid {pid}: {fds_baseline} fds, {rss_before:.1f} MiB RSS before the clients")
    tally = Tally()
    stop = asyncio.Event()
    kinds: list[type[Client]] = [SessionClient, StatelessClient]
    clients = [
        kinds[i % 2](gateway.url, token, CALLS, PROGRESS_CALLS[kinds[i % 2]], tally, stop)
        for i, token in enumerate(client_tokens)
    ]
    started = time.monotonic()
    running = [asyncio.create_task(client.run()) for client in clients]
    rss_warm = 0
    report_every = max(1.0, settings.seconds / 6)
    next_report = report_every
    while (elapsed := time.monotonic() - started) < settings.seconds:
        if not gateway.process.alive():
            break
        if not rss_warm and elapsed >= settings.warmup:
            rss_warm = rss_kib(pid)
            say(f"# warm-up over at {elapsed:.0f}s: {rss_warm / 1024:.1f} MiB RSS")
        if elapsed >= next_report:
            next_report += report_every
            say(
                f"# {elapsed:4.0f}s requests={tally.requests} failed={tally.failures} "
                f"rss_mib={rss_kib(pid) / 1024:.1f} fds={open_fds(pid)}"
            )
        await asyncio.sleep(0.25)
    stop.set()
    done, pending = await asyncio.wait(running, timeout=WIND_DOWN)
    for task in pending:
        task.cancel()
        tally.record("wind-down", f"a client still busy {WIND_DOWN:.0f}s after the end")
    for task in done:
        if task.exception() is not None:
            tally.record("client", repr(task.exception()))
    if not gateway.process.alive():
        tally.record("aigw", f"the process died: {gateway.process.log_tail(10)}")
        return Figures(tally.requests, tally.failures, rss_warm, 0, fds_baseline, 0)
    fds_end = await settle(pid, fds_baseline, settings.settle)
    rss_end = rss_kib(pid)
    after = time.monotonic() - started
    say(
        f"# {after:.0f}s after the start, clients gone: {rss_end / 1024:.1f} MiB RSS, {fds_end} fds"
    )
    report(tally)
    if fds_end != fds_baseline:
        say(f"# fds before: {dict(kinds_before)}")
        say(f"# fds after:  {dict(fd_kinds(pid))}")
    return Figures(
        tally.requests, tally.failures, rss_warm or rss_end, rss_end, fds_baseline, fds_end
    )


def report(tally: Tally) -> None:
    say(f"{'request':<32} {'sent':>8} {'failed':>8}")
    for kind in sorted(tally.sent):
        say(f"{kind:<32} {tally.sent[kind]:>8} {tally.failed[kind]:>8}")
    for sample in tally.samples:
        say(f"# failed: {sample}")


def main() -> int:
    try:
        settings = Settings.from_environ(os.environ)
    except ValueError as error:
        print(f"soak: {error}", file=sys.stderr)
        return 2
    say(
        f"# soak: {settings.seconds:g}s, {settings.clients} clients, warm-up {settings.warmup:g}s, "
        f"settle at most {settings.settle:g}s"
    )
    stoppers: list[Callable[[], object]] = []
    try:
        users = [f"soak{i:03d}" for i in range(settings.clients)]
        auth = start_auth_server(
            access_token_ttl=int(settings.seconds) + 3600,
            users={u: {"password": f"{u}-password", "scopes": SCOPE.split()} for u in users},
            test_control=False,
        )
        stoppers.append(auth.stop)
        everything = start_server_everything()
        stoppers.append(everything.stop)
        modern = start_pyserver(stateless=True, modern_only=True)
        stoppers.append(modern.stop)
        gateway = start_gateway(
            [("everything", everything.url), ("modern", modern.url)],
            issuer=auth.issuer,
            log_level="info",
        )
        stoppers.append(gateway.stop)
        client_tokens = asyncio.run(tokens(auth, users, gateway.url))
        figures = asyncio.run(soak(settings, gateway, client_tokens))
    finally:
        for stopper in reversed(stoppers):
            stopper()
    for unmet in figures.unmet():
        say(f"# not met: {unmet}")
    say(figures.closing_line())
    return 1 if figures.unmet() else 0


if __name__ == "__main__":
    sys.exit(main())
