"""Log levels (MCP 2025-11-25 and 2026-07-28 server/utilities/logging, "Log Levels").

The syslog severities of RFC 5424 §6.2.1, least severe first: a client asking
for ``warning`` gets ``warning`` and everything more severe.
"""

from __future__ import annotations

from typing import Any

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_RANK = {level: rank for rank, level in enumerate(LOG_LEVELS)}


def is_level(value: Any) -> bool:
    return isinstance(value, str) and value in _RANK


def at_least(level: Any, threshold: str) -> bool:
    """Does a message of ``level`` pass a client's ``threshold``?  A message whose level
    is not one of the eight is let through: the client is the one to judge it."""
    if not is_level(level):
        return True
    return _RANK[level] >= _RANK[threshold]
