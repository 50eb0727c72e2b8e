"""What a tool or prompt pin is made of (``backends[].pin_tools``, rug-pull protection).

A pin is the SHA-256 of the canonical JSON of what the model and the user read of an
item: for a tool its ``name``, ``description``, ``inputSchema``, ``outputSchema``,
``annotations`` and ``title`` (MCP 2025-11-25 server/tools "Tool"); for a prompt its
``name``, ``description``, ``arguments`` and ``title`` (server/prompts "Prompt").
Other fields (``_meta``, ``icons``) may change freely.  Canonical: keys sorted, no
spaces, non-ASCII escaped (``\\uXXXX``), so the same definition always gives the same
text and digest, and hidden characters are visible in ``aigw tools changes``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Any

#: The check name a changed pin is reported under (events, metrics).
PIN_CHECK = "pin_changed"

PINNED_FIELDS: dict[str, tuple[str, ...]] = {
    "tool": ("name", "description", "inputSchema", "outputSchema", "annotations", "title"),
    "prompt": ("name", "description", "arguments", "title"),
}
#: Lines of a change shown at most (``aigw tools changes``).
MAX_DIFF_LINES = 40


def definition(kind: str, item: dict[str, Any]) -> str:
    """The canonical JSON text of what is pinned of ``item`` (a ``tool`` or ``prompt``)."""
    pinned = {field: item[field] for field in PINNED_FIELDS[kind] if field in item}
    return json.dumps(pinned, sort_keys=True, separators=(",", ":"), default=str)


def digest_of(text: str) -> str:
    """The pin of a canonical definition."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def changed_fields(before: str | None, after: str | None) -> tuple[str, ...]:
    """The pinned fields that differ between two canonical definitions (all of them
    when either is unknown or unreadable)."""
    old, new = _load(before), _load(after)
    if old is None or new is None:
        return tuple(sorted({*(old or {}), *(new or {})}))
    return tuple(sorted(k for k in {*old, *new} if old.get(k, None) != new.get(k, None)))


def diff(before: str | None, after: str | None) -> list[str]:
    """A short unified diff of two canonical definitions, pretty-printed (at most
    MAX_DIFF_LINES lines); the new one alone when the old is unknown."""
    old, new = _pretty(before), _pretty(after)
    if not old:
        return new[:MAX_DIFF_LINES]
    lines = list(difflib.unified_diff(old, new, "pinned", "now", n=1, lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more lines)"]
    return lines


def _load(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _pretty(text: str | None) -> list[str]:
    value = _load(text)
    if value is None:
        return []
    return json.dumps(value, sort_keys=True, indent=2).splitlines()
