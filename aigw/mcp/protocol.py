"""Protocol revisions aigw speaks to clients, and what each allows."""

from __future__ import annotations

#: Newest first (MCP basic/lifecycle, "Version Negotiation").
SUPPORTED_VERSIONS: tuple[str, ...] = ("2025-11-25", "2025-06-18", "2025-03-26")
LATEST_VERSION = SUPPORTED_VERSIONS[0]
#: MCP basic/transports "Protocol Version Header": a missing header means this.
DEFAULT_HEADER_VERSION = "2025-03-26"


def negotiate(requested: object) -> str:
    """The version aigw answers ``initialize`` with.

    Lifecycle, "Version Negotiation": if the server supports the requested
    version it MUST respond with the same version, otherwise with the latest
    version it supports.
    """
    if isinstance(requested, str) and requested in SUPPORTED_VERSIONS:
        return requested
    return LATEST_VERSION


def allows_batches(version: str) -> bool:
    """JSON-RPC batching exists in 2025-03-26 only (removed in 2025-06-18)."""
    return version == "2025-03-26"
