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


#: The client capabilities a backend may ask a client to use (2025-11-25 client/*;
#: 2026-07-28 basic/patterns/mrtr "Server Requirements" 7).
INPUT_CAPABILITIES = ("sampling", "elicitation", "roots")
#: Which capability each input request needs.
CAPABILITY_OF = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}


def input_capabilities(declared: Any) -> dict[str, Any]:
    """What a client declared it can answer (sampling, elicitation, roots), as objects:
    from ``initialize`` or from a 2026-07-28 request's ``_meta`` envelope."""
    if not isinstance(declared, dict):
        return {}
    return {k: v for k in INPUT_CAPABILITIES if isinstance(v := declared.get(k), dict)}
