"""The ``aigw`` command: ``aigw run FILE`` and ``aigw check FILE``.

``run`` is ``twistd --nodaemon --pidfile= aigw --config FILE``: the same
service, in the foreground, logging to stderr.  ``check`` validates a config
file and prints every problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aigw import __version__
from aigw.config import EX_CONFIG, ConfigError, format_problems, load_config


def check(path: str) -> int:
    """Validate ``path``; print every problem; 0 when valid, 78 (EX_CONFIG) otherwise."""
    try:
        config = load_config(path)
    except ConfigError as error:
        sys.stderr.write(format_problems(error) + "\n")
        return EX_CONFIG
    names = ", ".join(backend.name for backend in config.backends)
    auth = "none (development only)" if config.auth is None else config.auth.issuer
    sys.stdout.write(
        f"{path}: ok\n  resource: {config.resource_url}\n  auth: {auth}\n  backends: {names}\n"
    )
    return 0


def run(path: str) -> int:
    """Run the daemon in the foreground through twistd, so both entry points share one path."""
    from twisted.scripts.twistd import run as twistd_run

    sys.argv = ["aigw", "--nodaemon", "--pidfile=", "aigw", "--config", path]
    try:
        twistd_run()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aigw", description="MCP gateway daemon")
    parser.add_argument("--version", action="version", version=f"aigw {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the gateway in the foreground")
    run_parser.add_argument("config", help="path to the YAML configuration file")
    check_parser = commands.add_parser("check", help="validate a configuration file")
    check_parser.add_argument("config", help="path to the YAML configuration file")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.config)
    return run(args.config)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
