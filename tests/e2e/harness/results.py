"""Reading what the MCP SDK clients return."""

from __future__ import annotations

from typing import Any


def text_of(result: Any) -> str:
    """The text of a tool result's content blocks, joined (non-text blocks count as empty)."""
    return "".join(getattr(item, "text", "") for item in result.content)
