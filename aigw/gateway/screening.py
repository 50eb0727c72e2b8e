"""Tool description screening (``backends[].screen_tools``): verdicts, their cache, events.

The checks are pure (``protocol/screening.py``); this module applies them as
items are listed: ``warn`` serves a flagged item and reports it, ``block``
hides it and refuses its use as unknown.  Under ``block`` only items screened
clean in this process may be used: a name never listed here is listed first
(``Catalog.learn_names``), and one still unscreened is refused.  A verdict is
cached by the item's digest (and the names it was screened against), so lists
are not screened again until a description changes; a ``ToolFlagged`` event is
reported when a name's findings (or its backend's mode) change, not on every list.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Literal

from aigw.events import GatewayObserver, ToolFlagged
from aigw.lru import LRU
from aigw.protocol.screening import Finding, findings

#: What screening looks at: the items whose descriptions the model reads.
Named = Literal["tool", "prompt"]
#: Verdicts remembered (digests and names each): a bound against backends that list
#: without end, far above any real catalog.
MAX_VERDICTS = 50_000


def digest(item: dict[str, Any], context: object) -> str:
    """What a verdict depends on: the whole item, and what it was screened against."""
    text = json.dumps([item, repr(context)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Screening:
    """Screens list items of backends whose ``screen_tools`` is not ``off``."""

    def __init__(self, observer: GatewayObserver) -> None:
        self.observer = observer
        self._by_digest: LRU[tuple[str, Named, str, str], tuple[Finding, ...]] = LRU(MAX_VERDICTS)
        self._by_name: LRU[tuple[str, Named, str], tuple[Finding, ...]] = LRU(MAX_VERDICTS)
        # What was last reported per name, and under which mode (a reload may change it).
        self._reported: LRU[tuple[str, Named, str], tuple[object, ...]] = LRU(MAX_VERDICTS)

    def admit(
        self,
        backend: str,
        mode: str,
        kind: Named,
        item: dict[str, Any],
        others: Iterable[str],
        own: Iterable[str],
        context: object,
    ) -> bool:
        """Whether ``item`` is served; screens it (once per digest) unless ``mode`` is off."""
        if mode == "off":
            return True
        name: str = item["name"]
        key = (backend, kind, name, digest(item, context))
        found = self._by_digest.get(key)
        if found is None:
            found = findings(item, others, own)
            self._by_digest.put(key, found)
        self._by_name.put((backend, kind, name), found)
        if found and self._reported.get((backend, kind, name)) != (found, mode):
            self._reported.put((backend, kind, name), (found, mode))
            self._report(backend, mode, kind, name, found)
        return not found or mode != "block"

    def usable(self, backend: str, mode: str, kind: Named, name: str) -> bool:
        """May ``name`` be called (or got)?  Under ``block``, only when screened clean."""
        if mode != "block":
            return True
        return self._by_name.get((backend, kind, name)) == ()

    def screened(self, backend: str, kind: Named, name: str) -> bool:
        return self._by_name.get((backend, kind, name)) is not None

    def _report(
        self, backend: str, mode: str, kind: Named, name: str, found: tuple[Finding, ...]
    ) -> None:
        action: Literal["warned", "blocked"] = "blocked" if mode == "block" else "warned"
        checks = tuple(dict.fromkeys(f.check for f in found))
        reasons = tuple(str(f) for f in found)
        self.observer.tool_flagged(ToolFlagged(backend, kind, name, checks, reasons, action))
