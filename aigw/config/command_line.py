"""A config made from the command line and an ``mcpServers`` file: ``aigw run
--mcp-config FILE`` (or ``--mcp-json JSON``), ``aigw convert``.

The flags (``--listen``, ``--issuer``, ``--public-url``) become the native keys
``listen``, ``public_url`` and ``auth``, and the file's servers the backends, read
by the native reader as ``import_mcp_servers`` would: one way to validate.

Without ``--issuer`` the gateway runs with ``auth: none``, so it must listen on the
loopback interface only (or a UNIX socket): anyone who reaches it uses every backend.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any

import attrs
import yaml
from yaml.error import Mark

from aigw.config import jsonnodes, mcp_servers, values
from aigw.config import nodes as cp
from aigw.config.errors import ConfigError, Problem
from aigw.config.model import Config
from aigw.config.read import ServersFile, parse_config

DEFAULT_LISTEN = "tcp:1975:interface=127.0.0.1"
COMMAND_LINE = "command line"
NO_AUTH_WARNING = (
    "no --issuer: running with auth: none, on the loopback interface only; anyone "
    "on this machine can use every backend"
)
_NOWHERE = Mark(COMMAND_LINE, 0, 0, 0, None, 0)


@attrs.frozen
class Flags:
    """What the command line says besides the servers."""

    listen: str = DEFAULT_LISTEN
    issuer: str | None = None
    public_url: str | None = None


def servers_file(*, path: str | None = None, text: str | None = None) -> ServersFile:
    """The ``--mcp-config`` file at ``path`` or the ``--mcp-json`` ``text``
    (ConfigError when the file cannot be read)."""
    if text is not None:
        return ServersFile("--mcp-json", text, os.getcwd())
    assert path is not None
    data = cp.read_text(path)
    return ServersFile(path, data, os.path.dirname(os.path.abspath(path)))


def settings(flags: Flags, env: Mapping[str, str]) -> dict[str, Any]:
    """The native keys the flags stand for; ConfigError naming each bad flag."""
    ctx = cp.Context(env=env, base_dir=os.getcwd())
    listen = _flag(ctx, "--listen", flags.listen, values.endpoint)
    issuer = None
    if flags.issuer is not None:
        issuer = _flag(ctx, "--issuer", flags.issuer, values.url(query=False))
    public_url = None
    if flags.public_url is not None:
        public_url = _flag(ctx, "--public-url", flags.public_url, values.url(query=False))
    if listen is not None:
        if flags.issuer is None and not _loopback_only(listen):
            ctx.problems.append(
                (
                    "--listen",
                    None,
                    f"{listen!r} is not loopback-only: without --issuer aigw runs with "
                    "auth: none, which must not be reachable from other machines "
                    "(listen on tcp:PORT:interface=127.0.0.1, or give --issuer)",
                )
            )
        elif public_url is None and flags.public_url is None:
            public_url = _public_url(ctx, listen)
    if ctx.problems:
        raise ConfigError(
            COMMAND_LINE, [Problem(path, None, text) for path, _, text in ctx.problems]
        )
    return {
        "listen": [listen],
        "public_url": public_url,
        "mcp_path": "/mcp",
        "auth": "none" if issuer is None else {"issuer": issuer},
    }


def load(servers: ServersFile, flags: Flags, env: Mapping[str, str] | None = None) -> Config:
    """The config ``aigw run --mcp-config`` runs with; ConfigError listing every problem."""
    env = os.environ if env is None else env
    text = yaml.safe_dump(settings(flags, env), sort_keys=False)
    try:
        return parse_config(text, servers.source, env, servers=servers)
    except ConfigError as error:
        # The servers file is the file being read here: its problems need no file name.
        raise ConfigError(
            servers.source,
            [
                attrs.evolve(p, source=None) if p.source == servers.source else p
                for p in error.problems
            ],
        ) from None


def _flag(ctx: cp.Context, flag: str, text: str, convert: cp.Converter[str]) -> str | None:
    return convert(ctx, flag, cp.ScalarNode(cp.STR, text, _NOWHERE, _NOWHERE, style="'"))


def _listening_on(listen: str) -> tuple[str, str | None, int | None]:
    """The kind of endpoint (``TCP``, ``SSL``, ``UNIX``...), its interface and its port;
    the string was validated first (``values.endpoint``), which imported Twisted's parser
    (not at this module's import: aigw/tls.py)."""
    from twisted.internet import endpoints

    kind, args, kwargs = endpoints._parseServer(listen, None)
    if not isinstance(kind, str):  # tcp6 and systemd are parsed by plugins
        name = listen.split(":", 1)[0].upper()
        port = int(args[0]) if name == "TCP6" and args else None
        return name, kwargs.get("interface", "::"), port
    if kind == "UNIX":
        return kind, None, None
    return kind, kwargs.get("interface", ""), int(args[0])


def _loopback_only(listen: str) -> bool:
    kind, interface, _ = _listening_on(listen)
    if kind == "UNIX":
        return True
    try:
        return interface is not None and ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def _public_url(ctx: cp.Context, listen: str) -> str | None:
    """The URL clients reach a loopback listener at; otherwise --public-url must say."""
    kind, interface, port = _listening_on(listen)
    if kind == "UNIX":
        return "http://localhost"
    loopback = _loopback_only(listen)
    if not loopback or not port or kind not in ("TCP", "TCP6", "SSL"):
        ctx.problems.append(
            (
                "--public-url",
                None,
                f"how clients reach {listen!r} cannot be told from it: give --public-url "
                "(the audience of tokens is --public-url + /mcp)",
            )
        )
        return None
    assert interface is not None
    host = f"[{interface}]" if ":" in interface else interface
    return f"{'https' if kind == 'SSL' else 'http'}://{host}:{port}"


def convert(servers: ServersFile, flags: Flags, env: Mapping[str, str] | None = None) -> str:
    """The native YAML of the servers and flags, with a comment where a choice was made
    (``aigw convert``); ConfigError listing every problem found in the file's shape.

    Values are copied as written (``${VAR}`` too); ``aigw check`` checks the result.
    """
    env = os.environ if env is None else env
    native = settings(flags, env)
    ctx = cp.Context(env=env, base_dir=servers.base_dir)
    node = jsonnodes.compose_json(ctx, servers.text)
    found = None if node is None else mcp_servers.read_servers(ctx, node)
    if found is None or ctx.problems:
        raise ConfigError(servers.source, [Problem(*p) for p in ctx.problems])
    return render(servers.source, native, found, warn_no_auth=flags.issuer is None)


def render(
    source: str, native: dict[str, Any], found: mcp_servers.Servers, *, warn_no_auth: bool
) -> str:
    """The native config as YAML text, commented."""
    lines = [
        f"# Converted from {source} by `aigw convert`.",
        "# Check it with `aigw check FILE`; etc/aigw/aigw.yaml explains every key.",
    ]
    if warn_no_auth:
        lines.append("# auth: none (no --issuer): anyone who reaches the listener uses every")
        lines.append("# backend; keep it on the loopback interface, for development only.")
    lines.append(yaml.safe_dump(native, sort_keys=False).rstrip("\n"))
    lines.append("backends:")
    for server in found.servers:
        note = f"  # {server.path} ({server.origin})"
        if server.transport == "stdio":
            note += ": a stdio backend"
        lines.append(note)
        entry = yaml.safe_dump(
            [mcp_servers.plain(server.node)], sort_keys=False, allow_unicode=True
        )
        lines.extend(f"  {line}" for line in entry.rstrip("\n").split("\n"))
    if not found.servers:
        lines[-1] = "backends: []"
    if found.left_out:
        lines.append("# Not converted:")
        lines.extend(f"#   {reason}" for reason in found.left_out)
    return "\n".join(lines) + "\n"
