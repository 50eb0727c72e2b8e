"""Capabilities: what aigw offers is the union of what its backends offer.

Lists merge and calls route, so a capability any backend has is aigw's.  Only
what routing needs travels in the sealed session id (``routing_capabilities``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aigw.sealed.session_id import BackendSession

ROUTED_CAPABILITIES = ("tools", "prompts", "resources", "logging", "completions")


def union_capabilities(sessions: Iterable[BackendSession]) -> dict[str, Any]:
    """What aigw offers is what any backend offers (lists merge, calls route)."""
    union: dict[str, Any] = {}
    for session in sessions:
        for capability in ROUTED_CAPABILITIES:
            offered = session.capabilities.get(capability)
            if not isinstance(offered, dict):
                continue
            merged = union.setdefault(capability, {})
            for flag, value in offered.items():
                if value is True:
                    merged[flag] = True
    return union


def routing_capabilities(offered: Any) -> dict[str, Any]:
    """Only what routing needs travels in the sealed session id: which capabilities
    a backend has and their boolean flags (an upstream's ``experimental`` blobs
    would only make every session id longer)."""
    if not isinstance(offered, dict):
        return {}
    return {
        name: {flag: True for flag, value in offered[name].items() if value is True}
        for name in ROUTED_CAPABILITIES
        if isinstance(offered.get(name), dict)
    }
