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
(``gateway/elicitation_completions.py``); when Redis fails or does not answer in time,
it goes over the peer hop as without Redis, and reaches what the hop reaches.  Never
twice: the process that asked uses its entry for the elicitation once, whichever way
reaches it first (``ElicitationSessions.completed``); and were a client told twice,
client/elicitation has it "MUST ignore notifications referencing unknown or
already-completed IDs".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from aigw.gateway.gateway import Gateway
from aigw.gateway.store_failures import StoreFailures
from aigw.sealed.elicitation_notice import ElicitationNotice, ElicitationNoticeCodec, InvalidNotice
from aigw.sealed.sealer import Sealer
from aigw.upstream.user_links import Grant
from aigw.web.mcp.hop import PeerHop
from aigw.web.request import WebRequest
from aigw.web.respond import write_json

#: The warning about refused notes, at most once per ``STORE_LOG_INTERVAL``: anyone can
#: POST a note (no bearer token is asked), so one line each would let anyone fill the log.
REFUSED_LINE = (
    "{count} peer elicitation notice(s) refused since the last report ({total} in all): {error}"
)

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
        #: Notes refused: counted, the latest reason logged now and then.
        self.refused = StoreFailures(gateway.clock, self.log, REFUSED_LINE)

    async def completed(self, grant: Grant) -> int:
        """The user of ``grant`` completed its elicitation in this process's browser
        flow: tell its session where it was asked; how many streams were told (with
        Redis: 0, told in the background, the browser's page does not wait: whichever
        process holds them tells them, and logs it)."""
        notice = ElicitationNotice(grant.elicitation_id, grant.issuer, grant.subject)
        if self._shared is not None:
            telling = ensureDeferred(self._through_redis(self._shared, grant, notice))
            telling.addErrback(
                lambda failure: self.log.failure("telling a completed elicitation", failure)
            )
            return 0
        return await self._where_asked(grant, notice)

    async def _through_redis(
        self, shared: ElicitationCompletions, grant: Grant, notice: ElicitationNotice
    ) -> None:
        """Through Redis; where it was asked when Redis did not take it (counted there)."""
        if await shared.completed(notice):
            self.log.info(
                "elicitation {id} completed: its notice went through Redis",
                id=grant.elicitation_id,
                path="through Redis",
            )
            return
        path = self._path(grant)
        told = await self._where_asked(grant, notice)
        self.log.info(
            "elicitation {id} completed: Redis did not take its notice, told {path} "
            "instead ({told} stream(s) told)",
            id=grant.elicitation_id,
            path=path,
            told=told,
        )

    def _path(self, grant: Grant) -> str:
        """How ``_where_asked`` tells the process that asked ``grant`` (for the log)."""
        if grant.process is None or grant.process == self._gateway.process:
            return "in this process"
        return "over the peer hop" if grant.peer_url is not None else "nowhere (no peer_url)"

    async def _where_asked(self, grant: Grant, notice: ElicitationNotice) -> int:
        """Tell the session in the process that asked: this one, or over the peer hop."""
        gateway = self._gateway
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
            self.refused.report(refused)
            refusal = {"error": "forbidden", "error_description": str(refused)}
            return write_json(request, 403, refusal)
        return write_json(request, 200, {"told": self._gateway.elicitation_completed(notice)})
