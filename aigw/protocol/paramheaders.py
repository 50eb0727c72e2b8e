"""``Mcp-Param-{Name}`` headers: tool arguments mirrored into HTTP headers (2026-07-28).

A tool's ``inputSchema`` may mark properties with ``x-mcp-header``
(basic/transports/streamable-http "Custom Headers from Tool Parameters").
aigw plays both roles: as the server of 2026-07-28 clients it checks that the
headers they send match the arguments in the body ("Server Behavior for
Custom Headers"); as the client of 2026-07-28 backends it sends them
("Client Behavior").  Annotations are learnt from the backends' tool lists.
"""

from __future__ import annotations

from typing import Any

#: header name -> property path inside ``arguments``
Annotations = dict[str, tuple[str, ...]]


def header_annotations(schema: Any, path: tuple[str, ...] = ()) -> Annotations:
    """The ``x-mcp-header`` annotations of a tool's ``inputSchema``, nested objects included."""
    found: Annotations = {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return found
    for key, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        header = prop.get("x-mcp-header")
        if isinstance(header, str) and header:
            found[header] = (*path, key)
        found.update(header_annotations(prop, (*path, key)))
    return found


def value_at(arguments: Any, path: tuple[str, ...]) -> Any:
    """The instance value at ``path`` ("Schema Extension": exact property path), or None."""
    value = arguments
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def as_text(value: Any) -> str | None:
    """ "Value Encoding", type conversion: strings as-is, integers in decimal, booleans
    lowercase; anything else is not mirrored."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    return None


def matches(header: str, value: Any) -> bool:
    """Header (decoded) against body value; numbers compare numerically ("Server Validation")."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(header) == float(value)
        except ValueError:
            return False
    return header == as_text(value)
