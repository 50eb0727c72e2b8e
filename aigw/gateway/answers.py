"""aigw's answers POSTed to a backend: a client's answer, a refusal, a pong.

Over Streamable HTTP a response to a backend's request travels as a POST of its own
(MCP 2025-11-25 basic/transports "Sending Messages to the Server": the body may be a
JSON-RPC response), on the upstream session the request came on, with the
credentials aigw uses toward that backend for the principal (never the client's
token).  Every such answer goes through ``UpstreamAnswers.post``: relayed client
answers (``Exchange.answer``), aigw's refusals (``Exchange.refuse``, ``refused``) and
its own ``pong`` (``protocol/ping.py``), on a client session's streams or on the reply
of a request aigw makes before any session exists (``exchange.OwnCollector``).

An answer never waits for a request slot (``UpstreamTransport.respond``): the reply
of the request holding one may be waiting for that very answer (a backend that
pings, or asks for sampling, on each call and answers none until answered), and
with every slot so held nothing would move until each call's timeout.  Answers
have a bound of their own instead, and what waits for it is bounded here:

* aigw's own answers made on the spot (a pong; a refusal: of a request sent on
  the reply of aigw's own ``initialize``, ``server/discover`` or a list,
  ``refused``, and of one no client can take, ``Exchange.refuse``) are at most
  ``MAX_ANSWERS_IN_FLIGHT`` per upstream session (``answer_now``); past it
  the request goes unanswered rather than queued, which for a ping
  basic/utilities/ping leaves to the sender (it "MAY consider the connection
  stale") and for another request is its own timeout;
* a client's answer travels while the client's POST that carries it waits, so
  those are bounded by the client requests the web layer lets in.

A ping is answered without waiting for anything and never awaited by the reply that
carried it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from aigw.lru import LRU
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.protocol.ping import pong
from aigw.protocol.refusals import refusal
from aigw.upstream.api import UpstreamError, UpstreamTransport

#: aigw's own answers (pongs, refusals) of one upstream session POSTed and not yet
#: taken; more of the backend's requests are dropped.
MAX_ANSWERS_IN_FLIGHT = 8

#: Upstream sessions whose answers fail remembered, to log only a failure's start.
FAILING_REMEMBERED = 1024

#: An upstream session as an answer names it: backend, ``Mcp-Session-Id`` (None: the
#: backend gave none), ``MCP-Protocol-Version`` (None: none sent).
Where = tuple[str, str | None, str | None]


class UpstreamAnswers:
    """POSTs aigw's answers to backends' requests; its own bounded per upstream session."""

    log = Logger()

    def __init__(self, transports: Mapping[str, UpstreamTransport]) -> None:
        #: The gateway's one mapping of transports, changed in place by a reload.
        self.transports = transports
        #: aigw's own answers in flight per upstream session (entries leave at zero).
        self._in_flight: dict[Where, int] = {}
        #: Sessions whose requests are being dropped: logged once until a place frees.
        self._dropping: set[Where] = set()
        #: Sessions whose last answer failed: a failure is logged once until one is
        #: taken (a backend refusing every pong of a ping flood is one warning).
        self._failing: LRU[Where, bool] = LRU(FAILING_REMEMBERED)

    def pinged(self, where: Where, principal: Principal | None, message: Any) -> bool:
        """Whether ``message`` is a ping, which is then answered at once on ``where``
        (``protocol/ping.py`` says why by aigw), unless that session already has
        ``MAX_ANSWERS_IN_FLIGHT`` answers on their way."""
        answer = pong(message)
        if answer is None:
            return False
        self.answer_now(where, principal, answer)
        return True

    def refused(
        self, where: Where, principal: Principal | None, message: Any, why: str, reason: str
    ) -> bool:
        """Whether ``message`` is a request (not a ping: ``pinged``), which is then
        refused at once on ``where`` (``protocol/refusals.py``: ``refusal`` with
        ``reason``), within the same bound as pongs."""
        if not jsonrpc.is_request(message):
            return False
        answer = jsonrpc.to_dict(refusal(message["id"], message["method"], why, reason))
        self.answer_now(where, principal, answer)
        return True

    def answer_now(self, where: Where, principal: Principal | None, answer: Any) -> None:
        """POST aigw's own ``answer`` (a pong, a refusal) on ``where`` without waiting,
        unless that session already has ``MAX_ANSWERS_IN_FLIGHT`` on their way: then
        it is dropped (and the backend's request left to its timeout)."""
        count = self._in_flight.get(where, 0)
        if count >= MAX_ANSWERS_IN_FLIGHT:
            if where not in self._dropping:
                self._dropping.add(where)
                self.log.warn(
                    "backend {backend} sends requests faster than it takes the answers "
                    "({count} in flight): they are dropped until one is taken",
                    backend=where[0],
                    count=count,
                )
            return
        self._in_flight[where] = count + 1
        work = ensureDeferred(self.post(where, principal, answer))
        work.addErrback(lambda f: self.log.failure("answering a request", f))
        work.addBoth(lambda _: self._answered(where))

    def _answered(self, where: Where) -> None:
        self._dropping.discard(where)
        count = self._in_flight.pop(where) - 1
        if count:
            self._in_flight[where] = count

    async def post(
        self, where: Where, principal: Principal | None, payload: dict[str, Any]
    ) -> None:
        """POST ``payload`` (a response) to the backend on the session ``where`` names;
        a failure is logged, the first of a run of them (``_failing``): the backend's
        request then times out on its side."""
        name, session_id, version = where
        try:
            transport = self.transports.get(name)
            if transport is None:
                raise UpstreamError(name, "unavailable", "removed from the configuration")
            await transport.respond(jsonrpc.dumps(payload), session_id, version, principal)
        except UpstreamError as error:
            if self._failing.get(where):
                self.log.debug(
                    "answering a request of {backend}: {error}", backend=name, error=str(error)
                )
                return
            self._failing.put(where, True)
            self.log.warn(
                "answering a request of {backend}: {error} (more failures on its session "
                "are not logged until an answer is taken)",
                backend=name,
                error=str(error),
            )
            return
        self._failing.pop(where)
