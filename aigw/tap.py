"""``twistd aigw --config FILE`` (or ``--mcp-config FILE``): options and the service tree.

The twistd plugin in ``twisted/plugins/aigw_plugin.py`` points here; ``aigw
run`` goes through twistd too, so there is one way to start the daemon.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from twisted.application.service import IService
from twisted.python import usage

from aigw import tls
from aigw.config import EX_CONFIG, Config, ConfigError, command_line, format_problems, load_config
from aigw.config.command_line import DEFAULT_LISTEN, NO_AUTH_WARNING
from aigw.config.read import ServersFile

DEFAULT_CONFIG = "/etc/aigw/aigw.yaml"


class Options(usage.Options):
    """Command-line options of ``twistd aigw``."""

    synopsis = (
        "[--config FILE | --mcp-config FILE | --mcp-json JSON] "
        "[--listen ENDPOINT] [--issuer URL] [--public-url URL]"
    )
    longdesc = (
        "Run the aigw MCP gateway: an OAuth 2.1 resource server (MCP Authorization "
        "specification) in front of MCP servers, exposing their tools as <backend>__<tool> "
        "on one Streamable HTTP endpoint. Logs go to stderr; under systemd (JOURNAL_STREAM "
        "set) each line carries its syslog priority. A config error exits with status 78. "
        'Instead of a config file, --mcp-config/--mcp-json take the {"mcpServers": ...} '
        "format of MCP clients, with --listen and --issuer; without --issuer the gateway "
        "runs with auth: none on the loopback interface only."
    )
    optParameters = [
        ["config", "c", None, f"Path to the YAML configuration file [default: {DEFAULT_CONFIG}]."],
        ["mcp-config", None, None, 'An {"mcpServers": ...} JSON file of an MCP client.'],
        ["mcp-json", None, None, "The same, as JSON text on the command line."],
        ["listen", None, None, f"With --mcp-*: endpoint to listen on [default: {DEFAULT_LISTEN}]."],
        ["issuer", None, None, "With --mcp-*: the authorization server (else auth: none)."],
        ["public-url", None, None, "With --mcp-*: how clients reach aigw (default: --listen's)."],
    ]

    loaded: Config

    def postOptions(self) -> None:
        """Load and validate the config once, before anything starts (EX_CONFIG on error).

        TLS is held back first: the config's endpoint strings let it in for a TLS
        listener, aigw's clients on their first ``https`` connection (aigw/tls.py).
        The reactor is installed after this, by ``makeService``."""
        tls.hold_back()
        servers = self._servers()
        try:
            if servers is None:
                self.loaded = load_config(self["config"] or DEFAULT_CONFIG)
            else:
                self.loaded = command_line.load(servers(), self._flags())
        except ConfigError as error:
            sys.stderr.write(format_problems(error) + "\n")
            raise SystemExit(EX_CONFIG) from None
        if servers is not None and self["issuer"] is None:
            sys.stderr.write(f"aigw: WARNING: {NO_AUTH_WARNING}\n")

    def _servers(self) -> Callable[[], ServersFile] | None:
        """How to read the mcpServers document given, if one is; UsageError on a mix."""
        path, text = self["mcp-config"], self["mcp-json"]
        if path is not None and text is not None:
            raise usage.UsageError("give --mcp-config or --mcp-json, not both")
        if (path is not None or text is not None) and self["config"] is not None:
            raise usage.UsageError("give --config or --mcp-config/--mcp-json, not both")
        if path is None and text is None:
            flags = [f"--{name}" for name in ("listen", "issuer", "public-url") if self[name]]
            if flags:
                raise usage.UsageError(
                    f"{', '.join(flags)} go with --mcp-config or --mcp-json "
                    "(a config file says it with its own keys)"
                )
            return None
        return lambda: command_line.servers_file(path=path, text=text)

    def _flags(self) -> command_line.Flags:
        return command_line.Flags(
            listen=self["listen"] or DEFAULT_LISTEN,
            issuer=self["issuer"],
            public_url=self["public-url"],
        )


def makeService(options: Options) -> IService:
    """Build the gateway's service tree from the validated config."""
    from twisted.internet import reactor

    from aigw.runtime import tune_garbage_collector
    from aigw.service import GatewayService

    # In the foreground (twistd -n, aigw run, systemd) aigw writes its own log
    # format to stderr; a daemonized twistd or an explicit --logfile keeps twistd's.
    server_options = options.parent if isinstance(options.parent, usage.Options) else {}
    foreground = bool(server_options.get("nodaemon")) and not server_options.get("logfile")
    reactor.callWhenRunning(tune_garbage_collector)  # once startup has built everything
    return GatewayService(
        options.loaded,
        reactor,
        log_to_stderr=foreground or not server_options,
        handle_sigterm=True,
    )
