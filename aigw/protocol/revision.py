"""Which revision a backend speaks, and the 2026-07-28 wire toward those that speak it.

aigw probes each backend with ``server/discover`` at 2026-07-28 (basic/versioning
"Backward Compatibility with Initialization-Based Versions": the HTTP probe is
a modern request whose failure without a modern error body means *legacy*),
remembers the answer, and forgets it when the backend fails, so a backend that
was upgraded or downgraded is probed again.

A backend that answers the probe and also accepts ``initialize`` (dual-era,
such as servers on the ``mcp`` 2.x SDK, whose discover result lists only
2026-07-28) is spoken to with sessions: over a session aigw relays the
backend's sampling and elicitation requests, its GET stream and
``notifications/cancelled`` to every client generation as they come, where the
2026-07-28 wire needs a round trip per question (input-required results, which
aigw bridges both ways: ``gateway/asking.py``, ``gateway/parking.py``).  Only
backends that refuse ``initialize`` get 2026-07-28.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aigw import __version__
from aigw.protocol import jsonrpc
from aigw.protocol.versions import (
    META_CLIENT_CAPABILITIES,
    META_CLIENT_INFO,
    META_LOG_LEVEL,
    META_PROTOCOL_VERSION,
    MODERN_VERSIONS,
    SUPPORTED_VERSIONS,
)

MODERN = MODERN_VERSIONS[0]
LEGACY = "legacy"

#: basic/versioning: the per-request envelope aigw sends as a client.
CLIENT_INFO = {"name": "aigw", "version": __version__}
#: What aigw says it is, as a server (``initialize``, ``server/discover``).
SERVER_INFO = {"name": "aigw", "title": "aigw MCP gateway", "version": __version__}

#: streamable-http "Standard Request Headers": the params ``Mcp-Name`` mirrors.
NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

#: Result members of 2026-07-28 that a session-based client has no use for.
MODERN_RESULT_FIELDS = ("resultType", "ttlMs", "cacheScope")


#: What aigw listens for on a 2026-07-28 backend: what a GET stream carried.
LISTEN_FILTER = {"toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True}


def discover_request(request_id: int) -> dict[str, Any]:
    """The probe: ``server/discover`` with the 2026-07-28 envelope (server/discover)."""
    return jsonrpc.request(request_id, "server/discover", envelope({}, MODERN))


def listen_request(request_id: int, resource_uris: list[str] | None = None) -> dict[str, Any]:
    """``subscriptions/listen`` toward a 2026-07-28 backend, in place of its GET stream
    (basic/patterns/subscriptions), with the resources a session client subscribed to
    ("Notification Filter" ``resourceSubscriptions``)."""
    wanted: dict[str, Any] = dict(LISTEN_FILTER)
    if resource_uris:
        wanted["resourceSubscriptions"] = list(resource_uris)
    params = envelope({"notifications": wanted}, MODERN)
    return jsonrpc.request(request_id, "subscriptions/listen", params)


def choose(result: Any) -> str:
    """The revision to speak to a backend that answered the probe with ``result``."""
    if not isinstance(result, dict):
        return LEGACY
    versions = result.get("supportedVersions")
    if not isinstance(versions, list) or MODERN not in versions:
        return LEGACY
    if any(v in SUPPORTED_VERSIONS for v in versions):
        return LEGACY  # dual-era: sessions bridge more (see the module docstring)
    return MODERN


def envelope(
    params: dict[str, Any],
    version: str,
    capabilities: dict[str, Any] | None = None,
    log_level: str | None = None,
) -> dict[str, Any]:
    """``params`` with aigw's ``_meta`` envelope (basic/versioning; server/discover);
    ``capabilities``: those of the client aigw can relay input requests to;
    ``log_level``: the client's (server/utilities/logging "Per-request log level")."""
    meta = params.get("_meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta.update(
        {
            META_PROTOCOL_VERSION: version,
            META_CLIENT_INFO: CLIENT_INFO,
            META_CLIENT_CAPABILITIES: capabilities or {},
        }
    )
    if log_level is not None:
        meta[META_LOG_LEVEL] = log_level
    return {**params, "_meta": meta}


#: streamable-http "Value Encoding": a header value that is not plain visible ASCII
#: travels as the Base64 of its UTF-8 between these sentinels.
_B64_START = "=?base64?"
_B64_END = "?="


def encode_header_value(value: str) -> str:
    """streamable-http "Value Encoding": plain when header-safe, else the Base64 sentinel."""
    safe = (
        value == value.strip()
        and all(0x20 <= ord(c) <= 0x7E for c in value)
        and not (value.startswith(_B64_START) and value.endswith(_B64_END))
    )
    if safe:
        return value
    return _B64_START + base64.b64encode(value.encode("utf-8")).decode("ascii") + _B64_END


def decode_header_value(value: str) -> str | None:
    """A routing header's value as the body would carry it; None if malformed.

    Plain values must be visible ASCII, space or tab (RFC 9110 §5.5); others
    travel as ``=?base64?...?=`` of their UTF-8 (streamable-http "Value Encoding").
    """
    if value.startswith(_B64_START) and value.endswith(_B64_END) and len(value) >= 11:
        try:
            decoded = base64.b64decode(value[len(_B64_START) : -len(_B64_END)], validate=True)
            return decoded.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    if any(not (0x20 <= ord(c) <= 0x7E or c == "\t") for c in value):
        return None
    return value


def routing_headers(method: str, params: dict[str, Any]) -> dict[bytes, bytes]:
    """``Mcp-Method`` and ``Mcp-Name`` for a request as sent upstream: the name is the
    backend's own (``<backend>__`` already stripped), so the headers match its body."""
    headers = {b"Mcp-Method": method.encode("ascii", "replace")}
    source = NAME_PARAMS.get(method)
    if source is not None and isinstance(params.get(source), str):
        headers[b"Mcp-Name"] = encode_header_value(params[source]).encode("ascii")
    return headers


def legacy_result(result: dict[str, Any]) -> dict[str, Any]:
    """A 2026-07-28 result as a session-based client expects it: a copy without the
    2026-07-28 fields, or ``result`` itself when it has none (most answers: a copy
    for each would cost every proxied call)."""
    if result.keys().isdisjoint(MODERN_RESULT_FIELDS):
        return result
    return {k: v for k, v in result.items() if k not in MODERN_RESULT_FIELDS}
