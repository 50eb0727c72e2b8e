"""Upstream sessions kept for 2026-07-28 clients, per user and backend.

A 2026-07-28 client has no session (basic/transports/streamable-http,
"Backward Compatibility"), but session-based backends (2025-11-25 and
earlier) need one: aigw opens it on the user's first request and keeps it
for that user's later requests, so a call does not cost an ``initialize``
round trip.  The pool is bounded (least recently used first out) and an
entry idle for longer than ``idle_seconds`` is dropped and its upstream
session ended; time comes from the injected reactor, so tests drive it with
``task.Clock``.

Opening and repairing upstream sessions is the job of ``backends.py``
(``BackendSessions.open_for_pool``, ``BackendSessions.repair``): the pool only
remembers what they return.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from aigw.gateway.fanout import fan_out
from aigw.principal import Principal, UserKey
from aigw.sealed.session_id import BackendSession

#: (user, backend): upstream sessions are never shared between users.
PoolKey = tuple[UserKey, str]

#: Opens upstream sessions with the named backends on behalf of a user (so the
#: backends' credentials are asked with that principal); leaves out those that fail.
Opener = Callable[[Principal, list[str]], Awaitable[list[BackendSession]]]
#: Ends one upstream session (DELETE) of a user; errors are the closer's to log.
Closer = Callable[[BackendSession, Principal], Coroutine[Any, Any, None]]

DEFAULT_MAX_ENTRIES = 10000
DEFAULT_IDLE_SECONDS = 600.0
#: A backend that failed to open is not tried again for this user before then.
RETRY_SECONDS = 30.0


@attrs.define
class _Entry:
    session: BackendSession
    principal: Principal
    used: float


class UpstreamSessionPool:
    """Bounded LRU of upstream sessions with idle expiry."""

    log = Logger()

    def __init__(
        self,
        clock: Any,
        opener: Opener,
        closer: Closer,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
    ) -> None:
        self.clock = clock
        self._opener = opener
        self._closer = closer
        self.max_entries = max_entries
        self.idle_seconds = idle_seconds
        self._entries: OrderedDict[PoolKey, _Entry] = OrderedDict()
        self._failed: OrderedDict[PoolKey, float] = OrderedDict()
        # Opens in progress, so concurrent first requests of a user share one.
        self._opening: dict[PoolKey, list[Deferred[BackendSession | None]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def sessions(
        self, principal: Principal, names: Iterable[str]
    ) -> dict[str, BackendSession]:
        """This user's upstream session with each backend that can be reached now."""
        user = principal.user
        now = self.clock.seconds()
        self._expire(now)
        found: dict[str, BackendSession] = {}
        missing: list[str] = []
        waits: list[tuple[str, Deferred[BackendSession | None]]] = []
        for name in names:
            key = (user, name)
            entry = self._entries.get(key)
            if entry is not None:
                entry.used = now
                self._entries.move_to_end(key)
                found[name] = entry.session
            elif key in self._opening:
                waiter: Deferred[BackendSession | None] = Deferred()
                self._opening[key].append(waiter)
                waits.append((name, waiter))
            elif self._failed.get(key, 0.0) <= now:
                missing.append(name)
        if missing:
            found.update(await self._open(principal, missing))
        for name, waiter in waits:
            session = await waiter
            if session is not None:
                found[name] = session
        return found

    async def _open(self, principal: Principal, names: list[str]) -> dict[str, BackendSession]:
        keys = [(principal.user, name) for name in names]
        for key in keys:
            self._opening[key] = []
        opened: dict[str, BackendSession] = {}
        try:
            opened = {s.name: s for s in await self._opener(principal, names)}
        finally:
            now = self.clock.seconds()
            for key in keys:
                session = opened.get(key[1])
                if session is None:
                    self._failed[key] = now + RETRY_SECONDS
                    self._failed.move_to_end(key)
                else:
                    self.put(key, session, principal)
                for waiter in self._opening.pop(key, []):
                    waiter.callback(session)
            while len(self._failed) > self.max_entries:
                self._failed.popitem(last=False)
        return opened

    def put(self, key: PoolKey, session: BackendSession, principal: Principal) -> None:
        """Remember (or replace, after a repair) the upstream session for ``key``."""
        old = self._entries.pop(key, None)
        if old is not None and old.session.session_id != session.session_id:
            self._end(old)
        self._entries[key] = _Entry(session, principal, self.clock.seconds())
        self._failed.pop(key, None)
        while len(self._entries) > self.max_entries:
            _, evicted = self._entries.popitem(last=False)
            self._end(evicted)

    def forget(self, backends: Collection[str]) -> None:
        """A reload removed or replaced these backends: end their pooled sessions (through
        the transports still in place), and let every backend be tried again at once."""
        for key in [key for key in self._entries if key[1] in backends]:
            self._end(self._entries.pop(key))
        self._failed.clear()

    def _expire(self, now: float) -> None:
        """Entries are in order of last use, so the idle ones are at the front."""
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.used + self.idle_seconds > now:
                return
            del self._entries[key]
            self._end(entry)

    def _end(self, entry: _Entry) -> None:
        """End an upstream session we no longer keep (the backend would keep it until its own
        timeout otherwise); in the background, failures logged by the closer."""
        if entry.session.session_id is None:
            return
        ensureDeferred(self._closer(entry.session, entry.principal)).addErrback(
            lambda f: self.log.failure("ending a pooled upstream session", f)
        )

    async def close(self) -> None:
        """End every pooled upstream session (service stop), all at once."""
        entries = {
            key: entry
            for key, entry in self._entries.items()
            if entry.session.session_id is not None
        }
        self._entries.clear()
        await fan_out(
            entries,
            lambda key: self._closer(entries[key].session, entries[key].principal),
            self.log,
            "ending the pooled upstream session {backend}: {reason}",
        )
