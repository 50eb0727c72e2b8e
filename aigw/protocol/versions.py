"""Protocol revisions aigw speaks to clients, and what each allows."""

from __future__ import annotations

#: Newest first (MCP basic/lifecycle, "Version Negotiation").
SUPPORTED_VERSIONS: tuple[str, ...] = ("2025-11-25", "2025-06-18", "2025-03-26")
LATEST_VERSION = SUPPORTED_VERSIONS[0]
#: MCP basic/transports "Protocol Version Header": a missing header means this.
DEFAULT_HEADER_VERSION = "2025-03-26"

#: Revisions without the initialize handshake (2026-07-28 basic/versioning,
#: "Terminology": *modern*): every request carries its version in ``_meta``.
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
#: Everything aigw speaks, newest first, as listed in ``server/discover`` and in
#: UnsupportedProtocolVersionError (aigw is *dual-era*).
ALL_VERSIONS: tuple[str, ...] = MODERN_VERSIONS + SUPPORTED_VERSIONS

#: The requests of a server's features (MCP 2025-11-25 server/tools, server/prompts,
#: server/resources, server/utilities/completion): what a client asks of backends'
#: tools, prompts and resources.  2026-07-28 keeps them all but ``resources/subscribe``
#: and ``resources/unsubscribe`` (basic/patterns/subscriptions: ``subscriptions/listen``).
FEATURE_REQUESTS: tuple[str, ...] = (
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
)
#: Every request method a client may send aigw (MCP 2025-11-25 and 2026-07-28, and
#: aigw's ``subscriptions/listen``): where a method is a metric label or a span's
#: name, anything else is one value (``other``, ``_OTHER``), so a client cannot make
#: series or span names at will.
CLIENT_REQUESTS: frozenset[str] = frozenset(FEATURE_REQUESTS) | frozenset(
    {
        "initialize",
        "ping",
        "logging/setLevel",
        "subscriptions/listen",
        "tasks/get",
        "tasks/list",
        "tasks/result",
        "tasks/cancel",
    }
)

#: 2026-07-28 basic/index "_meta": the per-request envelope keys.
META_PREFIX = "io.modelcontextprotocol/"
META_PROTOCOL_VERSION = META_PREFIX + "protocolVersion"
META_SERVER_INFO = META_PREFIX + "serverInfo"
META_CLIENT_INFO = META_PREFIX + "clientInfo"
META_CLIENT_CAPABILITIES = META_PREFIX + "clientCapabilities"
#: server/utilities/logging "Per-request log level" (replaces ``logging/setLevel``).
META_LOG_LEVEL = META_PREFIX + "logLevel"
#: basic/patterns/subscriptions: the subscription a listen-stream message belongs to.
META_SUBSCRIPTION_ID = META_PREFIX + "subscriptionId"


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


def is_modern(version: str) -> bool:
    """Is ``version`` a revision served statelessly (no initialize, no sessions)?"""
    return version in MODERN_VERSIONS
