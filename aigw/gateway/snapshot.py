"""The config a request is served with, read once when the request starts.

A reload swaps the holder's config (``config/holder.py``); a request keeps the
snapshot it started with to its end.  The tables routing derives from a config
(backends by name, their order, tool selectors) are built once per config, not
per request: ``Snapshots.current`` rebuilds them only when the config changed.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from aigw.config import BackendConfig, Config
from aigw.config.holder import ConfigHolder
from aigw.gateway.selectors import ToolFilter
from aigw.principal import Principal


@attrs.frozen
class Snapshot:
    """One config and what routing derives from it."""

    config: Config
    backends: Mapping[str, BackendConfig]
    #: Backend names in config order: lists merge in this order.
    order: tuple[str, ...]
    filters: Mapping[str, ToolFilter]
    #: Each backend's index in ``backends``, to name the config key of a rule.
    indexes: Mapping[str, int]
    #: Backends an earlier config had and a reload removed: named in their callers' errors.
    removed: frozenset[str] = frozenset()

    @classmethod
    def of(cls, config: Config, removed: frozenset[str] = frozenset()) -> Snapshot:
        names = {b.name for b in config.backends}
        return cls(
            config=config,
            backends={b.name: b for b in config.backends},
            order=tuple(b.name for b in config.backends),
            filters={b.name: ToolFilter(b.tools) for b in config.backends},
            indexes={b.name: index for index, b in enumerate(config.backends)},
            removed=removed - names,
        )

    def unmet_scopes(self, principal: Principal, backend: str) -> tuple[str, ...]:
        """The backend's ``required_scopes`` when the principal lacks any; empty when met."""
        needed = self.backends[backend].required_scopes
        if needed and not set(needed) <= principal.scopes:
            return tuple(needed)
        return ()

    def scopes_rule(self, backend: str) -> str:
        """The config key of a backend's scope requirement, for the audit trail."""
        return f"backends[{self.indexes[backend]}].required_scopes"


class Snapshots:
    """The snapshot of the holder's current config, rebuilt when it changes."""

    def __init__(self, holder: ConfigHolder) -> None:
        self._holder = holder
        self._last = Snapshot.of(holder.current)

    def current(self) -> Snapshot:
        config = self._holder.current
        if config is not self._last.config:
            last = self._last
            self._last = Snapshot.of(config, last.removed | last.backends.keys())
        return self._last
