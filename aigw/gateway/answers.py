"""aigw's answers POSTed to a backend: a client's answer, a refusal, a pong.

Over Streamable HTTP a response to a backend's request travels as a POST of its own
(MCP 2025-11-25 basic/transports "Sending Messages to the Server": the body may be a
JSON-RPC response), on the upstream session the request came on, with the
credentials aigw uses toward that backend for the principal (never the client's
token).  Every such answer goes through ``UpstreamAnswers.post``: relayed client
answers and refusals (``Exchange.answer_upstream``) and aigw's own ``pong``
(``protocol/ping.py``), on a client session's streams or on the reply of a request aigw
makes before any session exists (``exchange.OwnCollector``).

A ping is answered without waiting for anything and never awaited by the reply that
carried it; the answers of one upstream session in flight are bounded
(``MAX_PONGS_IN_FLIGHT``): a backend that pings faster than it takes the answers
would otherwise grow aigw's memory with POSTs waiting for a request slot
(``upstream/client.py``), one per ping.  Past the bound a ping goes unanswered, which
basic/utilities/ping leaves to the sender: it "MAY consider the connection stale".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.protocol.ping import pong
from aigw.upstream.api import UpstreamError, UpstreamTransport

#: Pongs of one upstream session POSTed and not yet answered; more pings are dropped.
MAX_PONGS_IN_FLIGHT = 8

#: An upstream session as an answer names it: backend, ``Mcp-Session-Id`` (None: the
#: backend gave none), ``MCP-Protocol-Version`` (None: none sent).
Where = tuple[str, str | None, str | None]


def ignore(message: Any) -> None:
    """Sink for replies whose content does not matter (notifications, answers, DELETE)."""


class UpstreamAnswers:
    """POSTs aigw's answers to backends' requests; pongs bounded per upstream session."""

    log = Logger()

    def __init__(self, transports: Mapping[str, UpstreamTransport]) -> None:
        #: The gateway's one mapping of transports, changed in place by a reload.
        self.transports = transports
        #: Pongs in flight per upstream session (entries leave at zero).
        self._pongs: dict[Where, int] = {}
        #: Sessions whose pings are being dropped: logged once until a place frees.
        self._dropping: set[Where] = set()

    def pinged(self, where: Where, principal: Principal | None, message: Any) -> bool:
        """Whether ``message`` is a ping, which is then answered at once on ``where``
        (``protocol/ping.py`` says why by aigw), unless that session already has
        ``MAX_PONGS_IN_FLIGHT`` answers on their way."""
        answer = pong(message)
        if answer is None:
            return False
        count = self._pongs.get(where, 0)
        if count >= MAX_PONGS_IN_FLIGHT:
            if where not in self._dropping:
                self._dropping.add(where)
                self.log.warn(
                    "backend {backend} pings faster than it takes the answers "
                    "({count} in flight): its pings are dropped until one is taken",
                    backend=where[0],
                    count=count,
                )
            return True
        self._pongs[where] = count + 1
        work = ensureDeferred(self.post(where, principal, answer))
        work.addErrback(lambda f: self.log.failure("answering a ping", f))
        work.addBoth(lambda _: self._answered(where))
        return True

    def _answered(self, where: Where) -> None:
        self._dropping.discard(where)
        count = self._pongs.pop(where) - 1
        if count:
            self._pongs[where] = count

    async def post(
        self, where: Where, principal: Principal | None, payload: dict[str, Any]
    ) -> None:
        """POST ``payload`` (a response) to the backend on the session ``where`` names;
        a failure is logged: the backend's request then times out on its side."""
        name, session_id, version = where
        try:
            transport = self.transports.get(name)
            if transport is None:
                raise UpstreamError(name, "unavailable", "removed from the configuration")
            await transport.post(
                jsonrpc.dumps(payload), ignore, session_id, version, principal=principal
            )
        except UpstreamError as error:
            self.log.warn(
                "answering a request of {backend}: {error}", backend=name, error=str(error)
            )
