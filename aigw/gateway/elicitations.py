"""Which client session each URL elicitation went to, to tell it when the user is done.

MCP 2025-11-25 client/elicitation, "Completion Notifications for URL Mode Elicitation":
a server MAY send ``notifications/elicitation/complete`` with the ``elicitationId`` once
the out-of-band interaction completes, and MUST send it only to the client that got
the elicitation.  aigw's URL elicitations are its own (``user_oauth``: a -32042 whose
link the user follows to authorize aigw at a backend); when the backend's callback
stores the user's token, the session that got the -32042 is told on its GET stream.

Per process, bounded: an entry lives until the link expires, is used once, and the
oldest go first past ``max_entries``.  The entry names the session's user, and only a
completion by that same user (the link's, checked again at sign-in) tells it: a
completion naming anyone else tells nobody and leaves the entry for its own user.
The link names the process that answered the -32042, so a callback served by another
process is sent here (``web/elicitation_notices.py``, docs/scale-out.md).  A session
without an open GET stream in this process is told nothing: the notification is
optional and the client retries (client/elicitation: clients "SHOULD still provide
manual controls").  2026-07-28 has no such notification (its URL elicitations are
``input_required`` rounds the client retries): sessionless clients are never recorded.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.logger import Logger

from aigw.lru import LRU
from aigw.protocol import jsonrpc
from aigw.sealed.elicitation_notice import ElicitationNotice

METHOD = "notifications/elicitation/complete"
#: Elicitations awaited at once per process (a user's link is bound to its minting).
MAX_ENTRIES = 10000


def completion(elicitation_id: str) -> dict[str, Any]:
    """The notification (client/elicitation "Completion Notifications", Example)."""
    return jsonrpc.notification(METHOD, {"elicitationId": elicitation_id})


@attrs.frozen
class Asked:
    """The session answered an elicitation, its user, and when the link expires."""

    session_id: str
    issuer: str
    subject: str
    expires_at: float


class ElicitationSessions:
    """Elicitation id -> the session id that got it, until the link expires."""

    log = Logger()

    def __init__(self, clock: Any, max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._waiting: LRU[str, Asked] = LRU(max_entries)

    def asked(self, elicitation_id: str, asked: Asked) -> None:
        """The session ``asked.session_id`` was answered the elicitation (a -32042)."""
        self._waiting.put(elicitation_id, asked)

    def completed(self, notice: ElicitationNotice) -> str | None:
        """The session to tell, once: None when unknown here, told already, expired, or
        the session of another user than the one who completed it."""
        found = self._waiting.get(notice.elicitation_id)
        if found is None:
            return None
        if (found.issuer, found.subject) != (notice.issuer, notice.subject):
            self.log.warn(
                "elicitation {id} was completed by another user than its session's: nobody told",
                id=notice.elicitation_id,
            )
            return None
        self._waiting.pop(notice.elicitation_id)
        return found.session_id if self._clock.seconds() < found.expires_at else None
