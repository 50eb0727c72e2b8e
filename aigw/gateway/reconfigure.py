"""A reload, as the gateway takes it (``aigw/reload.py``): backends' transports swapped
in place, the bounds read at each use followed, open client streams told."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import attrs
from twisted.internet.defer import ensureDeferred

from aigw.config import Config
from aigw.config.limits import LimitsConfig
from aigw.gateway.ratelimit import build_limiter
from aigw.gateway.streams import SessionStream
from aigw.upstream.api import UpstreamTransport

if TYPE_CHECKING:
    from aigw.gateway.gateway import Gateway


@attrs.define
class Reconfigure:
    """The reload support of one ``Gateway``."""

    gateway: Gateway

    def reconfigure(
        self, fresh: Mapping[str, UpstreamTransport], removed: Collection[str]
    ) -> dict[str, UpstreamTransport]:
        """A reload's backends (``aigw/reload.py``), before its config is swapped in, in
        the same reactor turn: ``fresh`` transports for added and changed backends.

        The transports replaced or removed are returned, for the caller to close
        once their in-flight requests are done; a removed one stays reachable by
        name until then (``retire``), for requests that began before the reload.
        """
        gateway = self.gateway
        replaced = [name for name in fresh if name in gateway.transports]
        retired = {name: gateway.transports[name] for name in [*replaced, *removed]}
        # Pooled sessions end through the transports that opened them: before the swap.
        gateway.sessions.pool.forget(retired)
        gateway.backends.reconfigured(retired)
        gateway.transports.update(fresh)
        return retired

    def retire(self, name: str, transport: UpstreamTransport) -> None:
        """A removed backend's grace is over: its name reaches no transport any more."""
        if self.gateway.transports.get(name) is transport:
            del self.gateway.transports[name]

    def announce_lists_changed(self) -> int:
        """Tell every open client stream its lists may have changed; how many streams."""
        streams = [
            s for s in self.gateway.open_streams if isinstance(s, SessionStream) and not s.closed
        ]
        for stream in streams:
            stream.lists_changed()
        return len(streams)

    def follow_limits(self, old: Config, new: Config) -> None:
        """A reload: the bounds read at each use follow it.  Streams open beyond a
        lowered bound and pooled sessions beyond a smaller pool stay until they end."""
        gateway = self.gateway
        gateway.stream_limits.max_streams = new.server.max_streams
        gateway.stream_limits.max_per_user = new.sessions.max_streams_per_user
        gateway.sessions.codec.ttl = new.sessions.ttl
        gateway.sessions.pool.max_entries = new.sessions.pool_size
        gateway.sessions.pool.idle_seconds = new.sessions.pool_idle_timeout

        # The same Redis, reached the same way, keeps its store and the leases it holds;
        # redis_timeout and lease_ttl follow (Limiter.follow).
        def store(limits: LimitsConfig) -> tuple[object, ...]:
            return (limits.redis_url, limits.redis_ca_file)

        if store(new.limits) != store(old.limits):
            old_limiter = gateway.limiter
            gateway.limiter = gateway.calls.limiter = build_limiter(
                new.limits,
                gateway.clock,
                old_limiter.store_failures,  # counted since start
            )
            ensureDeferred(old_limiter.close())
        else:
            gateway.limiter.follow(new.limits)
