"""The ``aigw`` command: ``aigw run``, ``aigw check``, ``aigw convert``, ``aigw doctor``.

``run`` is ``twistd --nodaemon --pidfile= aigw ...``: the same service, in the
foreground, logging to stderr, from a config file or from an ``mcpServers``
file of an MCP client (``--mcp-config FILE`` or ``--mcp-json JSON``, as the Envoy
AI Gateway CLI names them, with ``--listen`` and ``--issuer``).  ``check``
validates either and prints every problem.  ``convert`` prints the native config
an ``mcpServers`` file, or an Envoy AI Gateway file (``envoy/``), stands for.  ``doctor``
checks a live set-up (``aigw/doctor/``).
``access explain`` says how the access rules decide one request for given token claims
(``auth/explain.py``).  ``tokens list|revoke`` and ``tools changes|accept`` read and
change the store in ``state_dir`` (``store/commands.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aigw import __version__
from aigw.auth import explain
from aigw.config import (
    EX_CONFIG,
    Config,
    ConfigError,
    command_line,
    envoy,
    format_problems,
    load_config,
)
from aigw.config.command_line import DEFAULT_LISTEN
from aigw.config.errors import located
from aigw.config.read import ServersFile
from aigw.store import commands as store_commands

_SERVER_FLAGS = ("mcp_config", "mcp_json", "listen", "issuer", "public_url")


def _load(args: argparse.Namespace) -> Config:
    if args.config is not None:
        return load_config(args.config)
    return command_line.load(_servers(args), _flags(args))


def _servers(args: argparse.Namespace) -> ServersFile:
    return command_line.servers_file(path=args.mcp_config, text=args.mcp_json)


def _flags(args: argparse.Namespace) -> command_line.Flags:
    return command_line.Flags(
        listen=args.listen or DEFAULT_LISTEN, issuer=args.issuer, public_url=args.public_url
    )


def check(args: argparse.Namespace) -> int:
    """Validate the config; print every problem; 0 when valid, 78 (EX_CONFIG) otherwise."""
    try:
        config = _load(args)
    except ConfigError as error:
        sys.stderr.write(format_problems(error) + "\n")
        return EX_CONFIG
    for warning in config.warnings:
        sys.stderr.write(f"{located(config.source, warning)} (warning)\n")
    names = ", ".join(backend.name for backend in config.backends)
    auth = "none (development only)" if config.auth is None else config.auth.issuer
    sys.stdout.write(
        f"{config.source}: ok\n  resource: {config.resource_url}\n  auth: {auth}\n"
        f"  backends: {names}\n"
    )
    return 0


def convert(args: argparse.Namespace) -> int:
    """Print the native config of an mcpServers file or of an Envoy AI Gateway file;
    78 (EX_CONFIG) on a problem."""
    try:
        if args.config is not None:
            sys.stdout.write(envoy.convert_file(args.config))
        else:
            sys.stdout.write(command_line.convert(_servers(args), _flags(args)))
    except ConfigError as error:
        sys.stderr.write(format_problems(error) + "\n")
        return EX_CONFIG
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the daemon in the foreground through twistd, so both entry points share one path."""
    from twisted.scripts.twistd import run as twistd_run

    options = ["--config", args.config] if args.config is not None else []
    for name in _SERVER_FLAGS:
        value = getattr(args, name)
        if value is not None:
            options += [f"--{name.replace('_', '-')}", value]
    sys.argv = ["aigw", "--nodaemon", "--pidfile=", "aigw", *options]
    try:
        twistd_run()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


def _add_servers_options(parser: argparse.ArgumentParser, *, with_file: bool) -> None:
    if with_file:
        parser.add_argument("config", nargs="?", help="path to the YAML configuration file")
    source = parser.add_mutually_exclusive_group(required=not with_file)
    source.add_argument(
        "--mcp-config", metavar="FILE", help='an {"mcpServers": ...} JSON file of an MCP client'
    )
    source.add_argument("--mcp-json", metavar="JSON", help="the same, as JSON text")
    parser.add_argument(
        "--listen", metavar="ENDPOINT", help=f"Twisted endpoint string (default {DEFAULT_LISTEN})"
    )
    parser.add_argument(
        "--issuer",
        metavar="URL",
        help="authorization server (without it: auth: none, loopback only)",
    )
    parser.add_argument(
        "--public-url", metavar="URL", help="how clients reach aigw (default: from --listen)"
    )


def _check_sources(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A config file, or an mcpServers document with its flags: one of the two."""
    servers = args.mcp_config is not None or args.mcp_json is not None
    if getattr(args, "config", None) is not None and servers:
        parser.error("give a config file or --mcp-config/--mcp-json, not both")
    if getattr(args, "config", None) is None and not servers:
        parser.error("give a config file, or --mcp-config FILE or --mcp-json JSON")
    flags = [f"--{n}" for n in ("listen", "issuer", "public_url") if getattr(args, n) is not None]
    if flags and not servers:
        parser.error(f"{', '.join(flags)} go with --mcp-config or --mcp-json".replace("_", "-"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aigw", description="MCP gateway daemon")
    parser.add_argument("--version", action="version", version=f"aigw {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the gateway in the foreground")
    _add_servers_options(run_parser, with_file=True)
    check_parser = commands.add_parser("check", help="validate a configuration")
    _add_servers_options(check_parser, with_file=True)
    convert_parser = commands.add_parser(
        "convert", help="print the native config of an mcpServers or Envoy AI Gateway file"
    )
    _add_servers_options(convert_parser, with_file=True)
    doctor_parser = commands.add_parser(
        "doctor",
        help="check a live set-up: one line per finding, with its fix",
        description="Checks the authorization server, the backends, the session key and the "
        "public URL of CONFIG. Exit status: 0 when nothing failed (warnings do not fail), "
        "1 when something failed, 78 when the config itself has problems.",
    )
    doctor_parser.add_argument("doctor_config", metavar="CONFIG", help="the YAML configuration")
    explain.add_parser(commands)
    store_commands.add_parsers(commands)
    args = parser.parse_args(argv)
    if args.command == "access":
        return explain.run(args)
    if args.command in ("tokens", "tools"):
        return store_commands.run(args, parser)
    if args.command == "doctor":
        from aigw.doctor import doctor

        return doctor(args.doctor_config)
    chosen = {"run": run_parser, "check": check_parser, "convert": convert_parser}[args.command]
    _check_sources(chosen, args)
    if args.command == "check":
        return check(args)
    if args.command == "convert":
        return convert(args)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
