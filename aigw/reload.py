"""Live reload (SIGHUP, ``systemctl reload aigw``): the new file in force, or nothing changed.

The file the daemon started from is read and validated again.  A file with
problems, or one that changes what only a restart can change (the listeners,
the public URL, the session keys, the issuer and how its keys are fetched, the
HTTP server's bounds, logging), is refused whole: every problem is logged with
its line and key path, the old config stays, and the failure is counted.
Otherwise, in one reactor turn, the added and changed backends get new
transports, the gateway forgets what it knew of the replaced ones, and the
holder swaps the config; its subscribers follow (the access rules, the stream
and session bounds, the token verifier and challenges, the metadata document).
New requests see the new config; requests already running finish with the
snapshot they began with.  Replaced and removed transports close once a request
begun before the reload has had its backend ``timeout`` to finish.  Open client
streams are told that their lists may have changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.logger import Logger

from aigw.config import BackendConfig, Config, ToolSelector
from aigw.config.errors import ConfigError, in_file_order, located
from aigw.config.holder import ConfigHolder
from aigw.config.read import load_config
from aigw.gateway.gateway import Gateway
from aigw.upstream.api import UpstreamTransport

#: Top-level keys read once, at start, by parts that live as long as the process.
RESTART_ONLY = (
    "listen",
    "public_url",
    "mcp_path",
    "auth",
    "sessions",
    "server",
    "logging",
    "allowed_origins",
    # Their listener and file are opened at start (SIGHUP reopens the audit file at the
    # same path, for log rotation: service.py, audit_file.py).
    "metrics",
    "audit",
    # The tracer and its exporter thread are built at start.
    "tracing",
    # The store (its file, its key) is opened at start.
    "state_dir",
    "token_store",
)

#: The keys of those sections that a reload does change: the gateway reads them at each
#: use (``Reconfigure.follow_limits``); the authenticator builds a new verifier over the
#: same signing keys (``Authenticator.follow``), the metadata document follows.
LIVE = (
    "auth.audiences",
    "auth.scopes_supported",
    "auth.required_scopes",
    "auth.leeway",
    "auth.require_access_token_type",
    "auth.shared_secret",
    "auth.token_cache_size",
    "auth.introspection",
    "auth.resource_name",
    "auth.resource_documentation",
    "sessions.ttl",
    "sessions.pool_size",
    "sessions.pool_idle_timeout",
    "sessions.max_streams_per_user",
    "sessions.stream_retry",
    "sessions.input_max_rounds",
    "sessions.input_timeout",
    "sessions.max_parked",
    "sessions.park_timeout",
    "sessions.peer_url",
    "server.max_streams",
)


def restart_keys(old: Config, new: Config) -> list[str]:
    """The key paths whose change needs a restart (a section's own fields when it has
    them: ``sessions.secret``, never its value)."""
    keys: list[str] = []
    for name in RESTART_ONLY:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        if attrs.has(type(before)) and type(before) is type(after):
            keys += [
                f"{name}.{field.name}"
                for field in attrs.fields(type(before))
                if getattr(before, field.name) != getattr(after, field.name)
                and f"{name}.{field.name}" not in LIVE
            ]
        else:
            keys.append(name)
    return keys


def _transport_settings(backend: BackendConfig) -> BackendConfig:
    """What a backend's transport is built from: all but what routing reads per request."""
    return attrs.evolve(backend, tools=ToolSelector(), required_scopes=())


@attrs.frozen
class BackendChanges:
    """Backends by name: new, gone, and those whose transport must be built again."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @classmethod
    def between(cls, old: Config, new: Config) -> BackendChanges:
        before = {b.name: _transport_settings(b) for b in old.backends}
        after = {b.name: _transport_settings(b) for b in new.backends}
        return cls(
            added=tuple(name for name in after if name not in before),
            removed=tuple(name for name in before if name not in after),
            changed=tuple(name for name in after if name in before and before[name] != after[name]),
        )

    @property
    def rebuilt(self) -> tuple[str, ...]:
        return (*self.added, *self.changed)


class Reloader(Service):
    """Reloads the config file on request; counts the outcomes.

    ``subscribe`` hooks hear each outcome (``True``: in force), for metrics.
    """

    log = Logger()

    def __init__(
        self,
        holder: ConfigHolder,
        gateway: Gateway,
        transport: Callable[[BackendConfig], UpstreamTransport],
        clock: Any,
        load: Callable[[str], Config] = load_config,
    ) -> None:
        self._holder = holder
        self._gateway = gateway
        self._transport = transport
        self._clock = clock
        self._load = load
        self._hooks: list[Callable[[bool], None]] = []
        # Replaced and removed transports waiting out their grace, by their timer.
        self._retiring: dict[Any, tuple[str, UpstreamTransport]] = {}
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.last_reload_ok_at: float | None = None

    def subscribe(self, hook: Callable[[bool], None]) -> None:
        self._hooks.append(hook)

    def reload(self) -> bool:
        """Read the file again and put it in force, whole, or change nothing."""
        old = self._holder.current
        if not self.running:
            self.log.warn("reload ignored: the service is not running")
            return False
        self.log.info("reloading {source}", source=old.source)
        try:
            new = self._load(old.source)
        except ConfigError as error:
            for problem in in_file_order(error.problems):
                self.log.error(
                    "reload refused: {source}: {problem}", source=error.source, problem=problem
                )
            return self._done(False, "the file has problems; the running config stays")
        for warning in new.warnings:
            self.log.warn("{warning}", warning=located(new.source, warning))
        restart = restart_keys(old, new)
        if restart:
            self.log.error(
                "reload refused: {keys} change only with a restart (systemctl restart aigw); "
                "nothing was applied",
                keys=", ".join(restart),
            )
            return self._done(False, "nothing was applied")
        changes = BackendChanges.between(old, new)
        after = {b.name: b for b in new.backends}
        try:
            fresh = {name: self._transport(after[name]) for name in changes.rebuilt}
        except Exception:
            self.log.failure("reload refused: building the new backends' transports failed")
            return self._done(False, "nothing was applied")
        self._apply(old, new, fresh, changes)
        return self._done(True, "")

    def _apply(
        self,
        old: Config,
        new: Config,
        fresh: dict[str, UpstreamTransport],
        changes: BackendChanges,
    ) -> None:
        """Everything in this reactor turn, with every new transport already built."""
        retired = self._gateway.reconfigure(fresh, changes.removed)
        self._holder.swap(new)
        grace = {b.name: b.timeout for b in old.backends}
        for name, transport in retired.items():
            timer = self._clock.callLater(grace[name], self._retire, name, transport)
            self._retiring[timer] = (name, transport)
        streams = 0
        if new.backends != old.backends or new.access != old.access:
            streams = self._gateway.announce_lists_changed()
        self.log.info(
            "reloaded {source}: backends added {added}, removed {removed}, changed {changed}; "
            "{streams} open stream(s) told their lists changed",
            source=new.source,
            added=", ".join(changes.added) or "none",
            removed=", ".join(changes.removed) or "none",
            changed=", ".join(changes.changed) or "none",
            streams=streams,
        )

    def _retire(self, name: str, transport: UpstreamTransport) -> Deferred[None]:
        self._retiring = {t: v for t, v in self._retiring.items() if v[1] is not transport}
        self._gateway.retire(name, transport)
        return ensureDeferred(transport.close()).addErrback(
            lambda f: self.log.failure("closing the old transport of {backend}", f, backend=name)
        )

    def _done(self, succeeded: bool, detail: str) -> bool:
        if succeeded:
            self.reloads_ok += 1
            self.last_reload_ok_at = self._clock.seconds()
        else:
            self.reloads_failed += 1
            self.log.error("reload failed: {detail}", detail=detail)
        for hook in self._hooks:
            hook(succeeded)
        return succeeded

    def stopService(self) -> Deferred[Any]:
        """Stopping: the transports still in their grace close now."""
        super().stopService()  # type: ignore[no-untyped-call]
        retiring, self._retiring = self._retiring, {}
        closing = []
        for timer, (name, transport) in retiring.items():
            if timer.active():
                timer.cancel()
            closing.append(self._retire(name, transport))
        return DeferredList(closing)
