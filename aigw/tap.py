"""``twistd aigw --config FILE``: options and the service tree.

The twistd plugin in ``twisted/plugins/aigw_plugin.py`` points here; ``aigw
run`` goes through twistd too, so there is one way to start the daemon.
"""

from __future__ import annotations

import sys

from twisted.application.service import IService
from twisted.internet import reactor
from twisted.python import usage

from aigw.config import EX_CONFIG, Config, ConfigError, format_problems, load_config


class Options(usage.Options):
    """Command-line options of ``twistd aigw``."""

    synopsis = "--config FILE"
    longdesc = (
        "Run the aigw MCP gateway: an OAuth 2.1 resource server (MCP Authorization "
        "specification) in front of MCP servers, exposing their tools as <backend>__<tool> "
        "on one Streamable HTTP endpoint. Logs go to stderr; under systemd (JOURNAL_STREAM "
        "set) each line carries its syslog priority. A config error exits with status 78."
    )
    optParameters = [
        ["config", "c", "/etc/aigw/aigw.yaml", "Path to the YAML configuration file."],
    ]

    loaded: Config

    def postOptions(self) -> None:
        """Load and validate the config once, before anything starts (EX_CONFIG on error)."""
        try:
            self.loaded = load_config(self["config"])
        except ConfigError as error:
            sys.stderr.write(format_problems(error) + "\n")
            raise SystemExit(EX_CONFIG) from None


def makeService(options: Options) -> IService:
    """Build the gateway's service tree from the validated config."""
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
