"""The transport of one backend, as its config says: Streamable HTTP (``url``) or stdio
(``command``).  The stdio transport is imported only for a ``command`` backend: a
gateway of HTTP backends never loads it (docs/performance.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigw.config import BackendConfig
from aigw.events import GatewayObserver
from aigw.upstream.api import UpstreamTransport
from aigw.upstream.client import Upstream
from aigw.upstream.credentials import build_credentials

if TYPE_CHECKING:
    from aigw.upstream.user_authorization import UserAuthorization


def build_transport(
    config: BackendConfig,
    reactor: Any,
    observer: GatewayObserver | None = None,
    user_authorization: UserAuthorization | None = None,
) -> UpstreamTransport:
    """``observer`` hears of connections: HTTP ones, or child processes started and ended;
    ``user_authorization``: the backend's OAuth client side, when it is ``user_oauth``."""
    if config.command is not None:
        from aigw.upstream.stdio import StdioUpstream

        return StdioUpstream(config, reactor, observer)
    credentials = build_credentials(config, reactor, user_authorization=user_authorization)
    return Upstream(config, reactor, credentials=credentials, observer=observer)
