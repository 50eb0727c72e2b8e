"""Tool pinning (``backends[].pin_tools``): rug-pull protection, beside screening.

The first definition of each tool and prompt a backend lists is pinned in the store
(``protocol/pins.py`` says what a definition is; ``store/pins.py`` how a pin changes).
A later, different definition is reported (a ``ToolFlagged`` event by ``pinning``,
check ``pin_changed``: log, audit trail, metrics) and waits as the pin's pending
change for an operator (``aigw tools changes``, ``aigw tools accept NAME``).  Under
``warn`` the changed item is served and flagged; under ``block`` it is hidden from
lists and its use refused until accepted.

The store is shared by every process of the host and by the operator's command, so it
is the authority: each list applies what it saw to the stored pin in one transaction
(``Store.record_pin``) whenever that differs from what this process holds, and the
pins held here are read again every ``CACHE_SECONDS``, or after ``REREAD_SECONDS``
when an item is held back (an operator may have accepted it since): an accept is
seen without a restart.  Under ``block`` only what this process saw listed and
matching its pin is used; a name never listed here is listed first
(``Catalog.learn_names``).  When the store fails, nothing new is pinned: a changed
or unpinned item is served under ``warn`` and held under ``block`` (fail closed).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, Literal

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.logger import Logger

from aigw.events import GatewayObserver, ToolFlagged
from aigw.lru import LRU
from aigw.protocol.pins import PIN_CHECK, changed_fields, definition, digest_of
from aigw.store.api import Store, ToolPin

Named = Literal["tool", "prompt"]
Key = tuple[str, Named, str]
#: Pins held in this process are read again after this long.
CACHE_SECONDS = 5.0
#: ... or after this long, when something is held back (it may have been accepted).
REREAD_SECONDS = 1.0
#: Items remembered (definitions seen, pins, reports): a bound against backends that
#: list without end, far above any real catalog.
MAX_ITEMS = 50_000


class Pinning:
    """Pins of the backends whose ``pin_tools`` is not ``off``, held from the store."""

    log = Logger()

    def __init__(self, store: Store | None, observer: GatewayObserver, clock: Any) -> None:
        self.store = store
        self.observer = observer
        self.clock = clock
        self._pins: LRU[Key, ToolPin] = LRU(MAX_ITEMS)
        # The digest of each item as last listed to this process.
        self._seen: LRU[Key, str] = LRU(MAX_ITEMS)
        # What was last reported of a changed item: (digest, mode).
        self._reported: LRU[Key, tuple[str, str]] = LRU(MAX_ITEMS)
        self._read_at: dict[str, float] = {}

    async def observe(
        self, backend: str, mode: str, kind: Named, items: Iterable[dict[str, Any]]
    ) -> None:
        """Apply what ``backend`` listed to its pins: pin what is new, record changes."""
        if mode == "off":
            return
        if self.store is None:
            self.log.error("backend {backend}: pin_tools needs state_dir", backend=backend)
            return
        await self._read(backend, CACHE_SECONDS)
        seen = []
        for item in items:
            text = definition(kind, item)
            key: Key = (backend, kind, item["name"])
            self._seen.put(key, digest_of(text))
            seen.append((key, text))
        if any(not self._matches(key) for key, _ in seen):
            await self._read(backend, REREAD_SECONDS)
        stale = [(key, text) for key, text in seen if self._stale(key)]
        if stale:
            # Queued together: the store's one thread runs them back to back.
            await gatherResults([ensureDeferred(self._record(key, text)) for key, text in stale])
        for key, _ in seen:
            self._report(key, mode)

    def usable(self, backend: str, mode: str, kind: Named, name: str) -> bool:
        """May ``name`` be listed, called or got?  Under ``block``, only when last listed
        here matching its pin."""
        return mode != "block" or self._matches((backend, kind, name))

    def seen(self, backend: str, kind: Named, name: str) -> bool:
        return self._seen.get((backend, kind, name)) is not None

    async def recheck(self, backend: str, mode: str, kind: Named, name: str) -> None:
        """Before a call to a held item: read the pins again (an operator may have
        accepted it), at most every REREAD_SECONDS."""
        key: Key = (backend, kind, name)
        if mode == "block" and self._seen.get(key) is not None and not self._matches(key):
            await self._read(backend, REREAD_SECONDS)

    def _matches(self, key: Key) -> bool:
        pin = self._pins.get(key)
        return pin is not None and pin.digest == self._seen.get(key)

    def _stale(self, key: Key) -> bool:
        """Whether the stored pin must be told what was listed: nothing pinned, a new
        change, or a change gone back to the pinned definition."""
        pin, digest = self._pins.get(key), self._seen.get(key)
        if pin is None:
            return True
        if digest == pin.digest:
            return pin.pending_digest is not None
        return digest != pin.pending_digest

    async def _read(self, backend: str, max_age: float) -> None:
        now = self.clock.seconds()
        if self.store is None or now - self._read_at.get(backend, -max_age) < max_age:
            return
        self._read_at[backend] = now
        try:
            pins = await self.store.get_pins(backend)
        except Exception as error:
            self.log.error(
                "backend {backend}: cannot read its tool pins: {error}",
                backend=backend,
                error=error,
            )
            return
        for pin in pins:
            if pin.kind in ("tool", "prompt"):
                self._pins.put((pin.backend, pin.kind, pin.name), pin)  # type: ignore[arg-type]

    async def _record(self, key: Key, text: str) -> None:
        assert self.store is not None
        backend, kind, name = key
        digest = self._seen.get(key) or digest_of(text)
        try:
            pin = await self.store.record_pin(
                backend, kind, name, digest, text, self.clock.seconds()
            )
        except Exception as error:
            self.log.error(
                "backend {backend}: cannot record the pin of {kind} {name!r}: {error}",
                backend=backend,
                kind=kind,
                name=name,
                error=error,
            )
            return
        if self._pins.get(key) is None and pin.digest == digest:
            self.log.debug(
                "backend {backend}: {kind} {name!r} pinned", backend=backend, kind=kind, name=name
            )
        self._pins.put(key, pin)

    def _report(self, key: Key, mode: str) -> None:
        """A ``ToolFlagged`` event when an item no longer matches its pin, once per new
        definition (and mode)."""
        pin, digest = self._pins.get(key), self._seen.get(key)
        if pin is None or digest is None or digest == pin.digest:
            self._reported.pop(key)
            return
        if self._reported.get(key) == (digest, mode):
            return
        self._reported.put(key, (digest, mode))
        backend, kind, name = key
        since = datetime.datetime.fromtimestamp(pin.first_seen, datetime.UTC)
        fields = changed_fields(pin.definition, pin.pending_definition)
        reason = (
            f"{PIN_CHECK}: {', '.join(fields) or 'definition'} changed since it was pinned "
            f"on {since:%Y-%m-%d %H:%M:%S} UTC (aigw tools accept to serve it as it is now)"
        )
        action: Literal["warned", "blocked"] = "blocked" if mode == "block" else "warned"
        self.observer.tool_flagged(
            ToolFlagged(backend, kind, name, (PIN_CHECK,), (reason,), action, by="pinning")
        )
