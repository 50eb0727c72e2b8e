"""What a client can answer: the capabilities a server may ask it for, and the check.

A server MUST NOT send a request the client did not declare it can answer:
sampling (2025-11-25 client/sampling "Capabilities"), roots (client/roots
"Capabilities") and elicitation in the mode asked for (client/elicitation
"Capabilities": ``{}`` means form only, ``url`` must be named; "Servers MUST NOT
send elicitation requests with modes that are not supported by the client").
2026-07-28 keeps the same rule for input requests (basic/patterns/mrtr, "Server
Requirements" 7).  aigw asks on its backends' behalf, so it checks for them.
"""

from __future__ import annotations

from typing import Any

#: The capabilities that say what server-to-client requests a client answers.
INPUT_CAPABILITIES = ("sampling", "elicitation", "roots")


def declared(capabilities: Any) -> dict[str, Any]:
    """The input capabilities of a client's declaration (the rest matters to no backend's
    requests, and would only lengthen the sealed session id)."""
    if not isinstance(capabilities, dict):
        return {}
    return {
        k: v for k, v in capabilities.items() if k in INPUT_CAPABILITIES and isinstance(v, dict)
    }


def elicitation_mode(params: Any) -> str:
    """client/elicitation "Elicitation Requests": a request without ``mode`` is form mode."""
    mode = params.get("mode") if isinstance(params, dict) else None
    return mode if isinstance(mode, str) else "form"


def missing(capabilities: dict[str, Any], method: str, params: Any) -> str | None:
    """The capability (``elicitation.url``, ``sampling``...) a client lacks to answer
    ``method`` with ``params``; None when it declared it (or the method needs none)."""
    if method == "sampling/createMessage":
        return None if "sampling" in capabilities else "sampling"
    if method == "roots/list":
        return None if "roots" in capabilities else "roots"
    if method != "elicitation/create":
        return None
    elicitation = capabilities.get("elicitation")
    mode = elicitation_mode(params)
    if not isinstance(elicitation, dict):
        return f"elicitation.{mode}"
    if not elicitation:
        # client/elicitation "Capabilities": an empty object is form mode only.
        return None if mode == "form" else f"elicitation.{mode}"
    return None if isinstance(elicitation.get(mode), dict) else f"elicitation.{mode}"
