"""The store's commands: ``aigw tokens list|revoke`` and ``aigw tools changes|accept``.

Each reads the config (``--config FILE``) for ``state_dir`` and the store's key, opens
the same SQLite file as the daemon (which may be running: the file is shared, WAL),
does one thing and exits: 0 done, 1 nothing matched (an unknown name, nothing
pending), 78 (EX_CONFIG) a config problem or no ``state_dir``, 74 (EX_IOERR) the
store cannot be used.  No secret is ever printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

from aigw.config import EX_CONFIG, Config, ConfigError, format_problems, load_config
from aigw.protocol.names import expose_name, split_name
from aigw.protocol.pins import changed_fields, diff
from aigw.store.api import EX_IOERR, Store, StoreError, ToolPin, UserTokenInfo
from aigw.store.factory import open_store

NOTHING = 1

Work = Callable[[Store, TextIO], Awaitable[int]]


def add_parsers(commands: Any) -> None:
    """``aigw tokens ...`` and ``aigw tools ...`` under ``commands`` (the subparsers)."""
    tokens = commands.add_parser("tokens", help="users' upstream tokens kept in state_dir")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    listing = token_commands.add_parser(
        "list", help="who holds a token for which backend, until when (never the token)"
    )
    revoke = token_commands.add_parser(
        "revoke", help="delete stored tokens: the users must authorize again"
    )
    for parser in (listing, revoke):
        parser.add_argument("--config", required=True, metavar="FILE", help="aigw's config")
        parser.add_argument("--sub", metavar="SUB", help="the user's subject at aigw's issuer")
        parser.add_argument("--backend", metavar="NAME", help="the backend's name")
        parser.add_argument("--issuer", metavar="URL", help="the issuer of the user's token")
    revoke.add_argument("--all", action="store_true", help="every stored token")
    tools = commands.add_parser("tools", help="pinned tools and prompts (pin_tools)")
    tool_commands = tools.add_subparsers(dest="tools_command", required=True)
    changes = tool_commands.add_parser(
        "changes", help="tools and prompts whose definition changed since pinned"
    )
    changes.add_argument("--config", required=True, metavar="FILE", help="aigw's config")
    accept = tool_commands.add_parser(
        "accept", help="pin a changed tool or prompt as it is now: served again"
    )
    accept.add_argument("name", metavar="NAME", help="the exposed name: <backend>__<tool>")
    accept.add_argument("--config", required=True, metavar="FILE", help="aigw's config")
    accept.add_argument(
        "--kind", choices=("tool", "prompt"), help="when a tool and a prompt share NAME"
    )


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the ``tokens`` or ``tools`` command ``args`` names."""
    work: Work
    if args.command == "tokens" and args.tokens_command == "list":
        work = _list_tokens(args)
    elif args.command == "tokens":
        keys = (args.sub, args.backend, args.issuer)
        if args.all == any(key is not None for key in keys):
            parser.error("tokens revoke needs --sub, --backend or --issuer, or --all alone")
        work = _revoke_tokens(args)
    elif args.tools_command == "changes":
        work = _changes
    else:
        work = _accept(args.name, args.kind)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        sys.stderr.write(format_problems(error) + "\n")
        return EX_CONFIG
    return with_store(config, work, sys.stdout)


def with_store(config: Config, work: Work, out: TextIO) -> int:
    """Open the config's store, run ``work`` on the reactor, close the store."""
    from twisted.internet import reactor, task
    from twisted.internet.defer import ensureDeferred

    if config.state_dir is None:
        sys.stderr.write(f"{config.source}: state_dir is not set: aigw stores nothing\n")
        return EX_CONFIG
    try:
        store = open_store(config, reactor, create=False)
    except StoreError as error:
        sys.stderr.write(f"aigw: state_dir: {error}\n")
        return EX_IOERR
    assert store is not None
    code = [EX_IOERR]

    async def main(_: Any) -> None:
        try:
            code[0] = await work(store, out)
        except Exception as error:
            sys.stderr.write(f"aigw: the store in {config.state_dir} failed: {error}\n")
        finally:
            await store.close()

    with contextlib.suppress(SystemExit):  # react() always exits; the code is ours
        task.react(lambda r: ensureDeferred(main(r)))
    return code[0]


# -- tokens ------------------------------------------------------------------


def _matching(args: argparse.Namespace, info: UserTokenInfo) -> bool:
    return all(
        wanted is None or wanted == value
        for wanted, value in (
            (args.sub, info.subject),
            (args.backend, info.backend),
            (args.issuer, info.issuer),
        )
    )


def _list_tokens(args: argparse.Namespace) -> Work:
    async def work(store: Store, out: TextIO) -> int:
        found = [info for info in await store.list_user_tokens() if _matching(args, info)]
        if not found:
            out.write("no stored token matches\n" if _filtered(args) else "no stored token\n")
            return 0
        now = datetime.datetime.now(datetime.UTC).timestamp()
        rows = [("ISSUER", "SUB", "BACKEND", "EXPIRES", "SCOPE", "REFRESH")]
        rows += [
            (
                info.issuer,
                info.subject,
                info.backend,
                _expiry(info.expires_at, now),
                info.scope or "-",
                "yes" if info.has_refresh_token else "no",
            )
            for info in found
        ]
        out.write(_table(rows))
        return 0

    return work


def _filtered(args: argparse.Namespace) -> bool:
    return any(key is not None for key in (args.sub, args.backend, args.issuer))


def _revoke_tokens(args: argparse.Namespace) -> Work:
    async def work(store: Store, out: TextIO) -> int:
        if args.all:
            backends = sorted({info.backend for info in await store.list_user_tokens()})
            count = 0
            for backend in backends:
                count += await store.revoke_user_tokens(backend=backend)
        else:
            count = await store.revoke_user_tokens(
                subject=args.sub, backend=args.backend, issuer=args.issuer
            )
        out.write(f"revoked {count} token{'' if count == 1 else 's'}\n")
        return 0

    return work


def _expiry(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "-"
    text = _when(expires_at)
    return f"{text} (expired)" if expires_at <= now else text


def _when(seconds: float) -> str:
    return f"{datetime.datetime.fromtimestamp(seconds, datetime.UTC):%Y-%m-%d %H:%M:%S}Z"


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )


# -- tools -------------------------------------------------------------------


def _exposed(pin: ToolPin) -> str:
    return expose_name(pin.backend, pin.name) or f"{pin.backend}__{pin.name}"


async def _changes(store: Store, out: TextIO) -> int:
    pending = await store.list_pending_pins()
    if not pending:
        out.write("no pending changes\n")
        return 0
    for pin in pending:
        fields = ", ".join(changed_fields(pin.definition, pin.pending_definition))
        out.write(
            f"{_exposed(pin)}  {pin.kind} {pin.name!r} of backend {pin.backend}: "
            f"changed since {_when(pin.pending_since or 0.0)} "
            f"(pinned {_when(pin.first_seen)}): {fields or 'definition'}\n"
        )
        out.writelines(f"    {line}\n" for line in diff(pin.definition, pin.pending_definition))
    out.write(f"accept one with: aigw tools accept NAME --config FILE ({len(pending)} pending)\n")
    return 0


def _accept(name: str, kind: str | None) -> Work:
    async def work(store: Store, out: TextIO) -> int:
        pending = await store.list_pending_pins()
        split = split_name(name)
        chosen = [
            pin
            for pin in pending
            if (_exposed(pin) == name or (pin.backend, pin.name) == split)
            and kind in (None, pin.kind)
        ]
        if not chosen:
            known = ", ".join(sorted({_exposed(pin) for pin in pending})) or "none"
            sys.stderr.write(
                f"aigw tools accept: no pending change of a {kind or 'tool or prompt'} named "
                f"{name} (pending: {known}; see aigw tools changes)\n"
            )
            return NOTHING
        if len(chosen) > 1:
            sys.stderr.write(
                f"aigw tools accept: {name} is a tool and a prompt, both changed: "
                "give --kind tool or --kind prompt\n"
            )
            return NOTHING
        [pin] = chosen
        if await store.accept_pin(pin.backend, pin.kind, pin.name) is None:
            sys.stderr.write(f"aigw tools accept: {name} was accepted meanwhile\n")
            return NOTHING
        out.write(
            f"accepted {pin.kind} {name}: every aigw sharing this state_dir serves it as it "
            "is now within seconds (no restart)\n"
        )
        return 0

    return work
