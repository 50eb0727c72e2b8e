"""The transport of one backend, as its config says: Streamable HTTP (``url``) or stdio
(``command``)."""

from __future__ import annotations

from typing import Any

from aigw.config import BackendConfig
from aigw.events import GatewayObserver
from aigw.upstream.api import UpstreamTransport
from aigw.upstream.client import Upstream
from aigw.upstream.stdio import StdioUpstream


def build_transport(
    config: BackendConfig, reactor: Any, observer: GatewayObserver | None = None
) -> UpstreamTransport:
    """``observer`` hears of connections: HTTP ones, or child processes started and ended."""
    if config.command is not None:
        return StdioUpstream(config, reactor, observer)
    return Upstream(config, reactor, observer=observer)
