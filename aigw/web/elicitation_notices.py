"""A completed URL elicitation, told to the session that got it, in whichever process.

MCP 2025-11-25 client/elicitation, "Completion Notifications for URL Mode
Elicitation": aigw sends ``notifications/elicitation/complete`` once, and only to the
client that got the elicitation (``gateway/elicitations.py``).  Behind a balancer
without stickiness (docs/scale-out.md) the browser's callback may land on another
process than the one that answered the -32042, which alone remembers the session.
The link names that process and its ``sessions.peer_url`` (``upstream/user_links.py``),
so the callback's process sends it a note over the peer hop (``web/mcp/hop.py``),
once.  The note carries no bearer token (the browser has none for the MCP endpoint):
it is sealed with the deployment's key for that one process and names the user
(``sealed/elicitation_notice.py``), and the receiver tells only a session of that user
that it asked itself.  Without a ``peer_url`` in the link, nobody is told (as before),
and the token is stored either way.  With ``sessions.redis_url`` the note goes through
Redis instead, and reaches the session's GET stream in whichever process holds it
(``gateway/elicitation_completions.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from twisted.logger import Logger

from aigw.gateway.gateway import Gateway
from aigw.sealed.elicitation_notice import ElicitationNotice, ElicitationNoticeCodec, InvalidNotice
from aigw.sealed.sealer import Sealer
from aigw.upstream.user_links import Grant
from aigw.web.mcp.hop import PeerHop
from aigw.web.request import WebRequest
from aigw.web.respond import write_json

if TYPE_CHECKING:  # imported only with sessions.redis_url (service.py)
    from aigw.gateway.elicitation_completions import ElicitationCompletions


class CompletionNotices:
    """Routes a completion to the process that asked; receives the ones sent here."""

    log = Logger()

    def __init__(
        self,
        gateway: Gateway,
        hop: PeerHop,
        sealer: Sealer,
        shared: ElicitationCompletions | None = None,
    ) -> None:
        """``shared``: through Redis (``sessions.redis_url``); None: over the peer hop."""
        self._gateway = gateway
        self._hop = hop
        self._codec = ElicitationNoticeCodec(sealer)
        self._shared = shared

    async def completed(self, grant: Grant) -> int:
        """The user of ``grant`` completed its elicitation in this process's browser
        flow: tell its session where it was asked; how many streams were told (through
        Redis: 0, whichever process holds them tells them, and logs it)."""
        notice = ElicitationNotice(grant.elicitation_id, grant.issuer, grant.subject)
        gateway = self._gateway
        if self._shared is not None:
            self._shared.completed(notice)
            return 0
        if grant.process is None or grant.process == gateway.process:
            return gateway.elicitation_completed(notice)
        if grant.peer_url is None:
            self.log.info(
                "elicitation {id} was asked by another aigw process, which has no "
                "sessions.peer_url: its session is not told",
                id=grant.elicitation_id,
            )
            return 0
        sealed = self._codec.seal(notice, grant.process, gateway.clock.seconds())
        return await self._hop.notify(grant.peer_url, sealed)

    def receive(self, request: WebRequest, notes: Sequence[bytes]) -> bytes:
        """A peer's note (``web/mcp/hop.py`` ``NOTICE_HEADER``): 200 with how many
        streams were told, or 403 when it is not a note sealed for this process."""
        try:
            if len(notes) != 1:
                raise InvalidNotice("one notice per request")
            notice = self._codec.open(
                notes[0].decode("ascii", "replace"),
                self._gateway.process,
                self._gateway.clock.seconds(),
            )
        except InvalidNotice as refused:
            self.log.warn("a peer's elicitation notice refused: {why}", why=str(refused))
            refusal = {"error": "forbidden", "error_description": str(refused)}
            return write_json(request, 403, refusal)
        return write_json(request, 200, {"told": self._gateway.elicitation_completed(notice)})
