"""The transport of one backend, as its config says: Streamable HTTP (``url``) or stdio
(``command``).  The stdio transport is imported only for a ``command`` backend: a
gateway of HTTP backends never loads it (docs/performance.md)."""

from __future__ import annotations

from typing import Any

from aigw.config import BackendConfig
from aigw.events import GatewayObserver
from aigw.upstream.api import UpstreamTransport
from aigw.upstream.client import Upstream


def build_transport(
    config: BackendConfig, reactor: Any, observer: GatewayObserver | None = None
) -> UpstreamTransport:
    """``observer`` hears of connections: HTTP ones, or child processes started and ended."""
    if config.command is not None:
        from aigw.upstream.stdio import StdioUpstream

        return StdioUpstream(config, reactor, observer)
    return Upstream(config, reactor, observer=observer)
