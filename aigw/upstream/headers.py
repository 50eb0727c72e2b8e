"""Which request headers toward an MCP server are aigw's own, and what a header may be.

A backend's static headers (``headers``, ``headers_file`` in the config) go on
the same request head as the headers aigw writes itself (``client.py`` ``_head``,
``connection.py`` ``Target.head``, ``protocol/revision.py`` ``routing_headers``).
A static header of the same name would be sent twice: a second ``Content-Length``
breaks the framing (RFC 9112 §6.3), a second ``Accept`` or ``Mcp-Session-Id``
leaves the server to pick one.  So the config refuses every name listed here.

Pure: no Twisted, nothing of aigw, so the config may import it (``.importlinter``).
"""

from __future__ import annotations

import re

#: RFC 9110 §5.1: a field name is a token (§5.6.2).
FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: RFC 9110 §5.5 field-value octets: HTAB, SP, VCHAR and obs-text (sent as Latin-1).
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")

#: HTTP framing and connection management: written by the connection
#: (``Host``, ``Content-Length``) or hop-by-hop (RFC 9110 §7.6.1, RFC 9112 §6.1).
FRAMING_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

#: What the upstream client writes on its requests (MCP basic/transports,
#: streamable-http "Sending Messages to the Server", "Session Management",
#: "Protocol Version Header", "Resumability and Redelivery", "Standard Request
#: Headers"), and the W3C trace context.
CLIENT_HEADERS = frozenset(
    {
        "accept",
        "content-type",
        "last-event-id",
        "mcp-method",
        "mcp-name",
        "mcp-protocol-version",
        "mcp-session-id",
        # W3C Trace Context §3.2: the request's trace, continued (aigw/tracing).
        "traceparent",
        "tracestate",
    }
)

#: Every header name aigw owns on an upstream request, lower-case.
RESERVED_HEADERS = FRAMING_HEADERS | CLIENT_HEADERS

#: ``Mcp-Param-{Name}``: a tool's arguments mirrored into headers (2026-07-28,
#: "Custom Headers from Tool Parameters"), written per call from the tool's schema.
RESERVED_PREFIXES = ("mcp-param-",)


def is_reserved(name: str) -> bool:
    """Whether aigw writes header ``name`` itself (field names are case-insensitive,
    RFC 9110 §5.1)."""
    lowered = name.lower()
    return lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES)
