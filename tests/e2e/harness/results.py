"""Reading what the MCP SDK clients return."""

from __future__ import annotations

from typing import Any

import anyio
from mcp import types


def text_of(result: Any) -> str:
    """The text of a tool result's content blocks, joined (non-text blocks count as empty)."""
    return "".join(getattr(item, "text", "") for item in result.content)


class ResourceUpdates:
    """A client's ``message_handler`` keeping the URIs of ``notifications/resources/updated``
    (MCP server/resources "Subscriptions"); ``arrived`` is set by the first."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self.arrived = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self.arrived.set()


class Numbers:
    """A client's ``message_handler``: the ``n`` of each ``notifications/message`` (the
    ``notify`` tools of ``e2e/resumable.mjs`` and ``pyserver --event-store``)."""

    def __init__(self) -> None:
        self.got: list[int] = []

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.LoggingMessageNotification):
            self.got.append(int(message.params.data["n"]))
