"""Which client session each URL elicitation went to, to tell it when the user is done.

MCP 2025-11-25 client/elicitation, "Completion Notifications for URL Mode Elicitation":
a server MAY send ``notifications/elicitation/complete`` with the ``elicitationId`` once
the out-of-band interaction completes, and MUST send it only to the client that got
the elicitation.  aigw's URL elicitations are its own (``user_oauth``: a -32042 whose
link the user follows to authorize aigw at a backend); when the backend's callback
stores the user's token, the session that got the -32042 is told on its GET stream.

Per process, bounded: an entry lives until the link expires, is used once, and the
oldest go first past ``max_entries``.  A session not known here (the -32042 answered by
another process, docs/scale-out.md), or without an open GET stream, is told nothing:
the notification is optional and the client retries (client/elicitation: clients
"SHOULD still provide manual controls").  2026-07-28 has no such notification (its URL
elicitations are ``input_required`` rounds the client retries): sessionless clients are
never recorded.
"""

from __future__ import annotations

from typing import Any

from aigw.lru import LRU
from aigw.protocol import jsonrpc

METHOD = "notifications/elicitation/complete"
#: Elicitations awaited at once per process (a user's link is bound to its minting).
MAX_ENTRIES = 10000


def completion(elicitation_id: str) -> dict[str, Any]:
    """The notification (client/elicitation "Completion Notifications", Example)."""
    return jsonrpc.notification(METHOD, {"elicitationId": elicitation_id})


class ElicitationSessions:
    """Elicitation id -> the session id that got it, until the link expires."""

    def __init__(self, clock: Any, max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._waiting: LRU[str, tuple[str, float]] = LRU(max_entries)

    def asked(self, elicitation_id: str, session_id: str, expires_at: float) -> None:
        """The session ``session_id`` was answered the elicitation (a -32042)."""
        self._waiting.put(elicitation_id, (session_id, expires_at))

    def completed(self, elicitation_id: str) -> str | None:
        """The session to tell, once: None when unknown here, told already or expired."""
        found = self._waiting.pop(elicitation_id)
        if found is None or self._clock.seconds() >= found[1]:
            return None
        return found[0]
