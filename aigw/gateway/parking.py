"""Parked calls: a session backend asks a 2026-07-28 client something mid-call.

A backend of the session revisions sends its questions (sampling, elicitation,
roots: 2025-11-25 client/*) on the call's response stream and waits for the
answers.  A 2026-07-28 client cannot receive server-to-client requests
(streamable-http "Receiving Messages"); it is asked with an ``input_required``
result instead and retries with ``inputResponses`` (basic/patterns/mrtr).  So
aigw answers the client ``input_required`` with the backend's questions and a
``requestState`` of its own (``sealed/request_state.py``), keeps reading the
upstream call meanwhile (it is *parked*), and when the client retries, sends
each answer to the backend and waits again: for the call's result, or for the
next questions (another round).

A parked call lives in the process that holds its upstream stream: at most
``sessions.max_parked`` of them, each ended after ``sessions.park_timeout``
without a retry.  A retry that lands on another process is forwarded there
(``ParkedElsewhere``; docs/scale-out.md).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from aigw.gateway.errors import GatewayError
from aigw.gateway.exchange import Collector, Exchange
from aigw.gateway.input_required import INPUT_REQUEST_METHODS
from aigw.protocol import jsonrpc
from aigw.protocol.client_capabilities import missing
from aigw.protocol.refusals import capability_refusal, refusal
from aigw.sealed.request_state import InvalidState, ParkState, RequestStateCodec, request_digest

if TYPE_CHECKING:
    from aigw.gateway.client_sessions import ClientSession
    from aigw.gateway.relay import Emit, Relay

#: Makes the client's cancellation (``Calls.cancel``) reach what a call waits on.
Hold = Callable[[Collector], None]


class ParkedElsewhere(Exception):
    """The retry's call is parked in another process, reachable at ``peer_url``."""

    def __init__(self, peer_url: str) -> None:
        super().__init__(peer_url)
        self.peer_url = peer_url


def _drop(message: dict[str, Any]) -> None:
    """Where a parked call's notifications go while no retry is there to carry them."""


class ParkedCall:
    """One upstream call and the questions its backend asked that the client has not
    answered yet."""

    def __init__(self, session: ClientSession, backend: str, relay: Relay, key: str) -> None:
        self.session = session
        self.backend = backend
        self.relay = relay
        self.key = key
        self.digest = ""
        self.emit: Emit = _drop
        self._numbers = itertools.count(1)
        #: Input key -> (the backend's request id, {method, params}), not answered yet.
        self.asked: dict[str, tuple[Any, dict[str, Any]]] = {}
        #: The upstream call's outcome, once it came: its message (None: cancelled) or failure.
        self.outcome: list[dict[str, Any] | Failure | None] = []
        self._wake: Deferred[None] | None = None
        self.timer: Any = None
        self.collector: Collector | None = None
        self.busy = False

    def incoming(self, message: Any) -> None:
        """What the backend sends besides its answer: questions are kept for the client;
        notifications go to the retry waiting now, if any."""
        if (
            isinstance(message, dict)
            and "id" in message
            and message.get("method") in INPUT_REQUEST_METHODS
        ):
            params = message.get("params")
            request = {"method": message["method"]}
            if isinstance(params, dict):
                request["params"] = params
            self.asked[f"q{next(self._numbers)}"] = (message["id"], request)
            self.wake()
            return
        self.relay.to_client(self.session, self.backend, message, self.emit)

    def finished(self, outcome: dict[str, Any] | Failure | None) -> None:
        self.outcome.append(outcome)
        # Nothing is cancelled once the outcome came: the collector (whose ``other`` is
        # ``self.incoming``) goes now, not at a cyclic collection (test_cycles.py).
        self.collector = None
        self.wake()

    def wake(self) -> None:
        if self._wake is not None and not self._wake.called:
            self._wake.callback(None)

    def changed(self) -> Deferred[None]:
        """Fires when the backend asks something or the call ends."""
        self._wake = Deferred()
        return self._wake


class Parking:
    """Runs 2026-07-28 clients' calls to session backends, parking them while they wait."""

    log = Logger()

    def __init__(
        self,
        exchange: Exchange,
        relay: Relay,
        codec: RequestStateCodec,
        clock: Any,
        process: str,
    ) -> None:
        self.exchange = exchange
        self.relay = relay
        self.codec = codec
        self.clock = clock
        self.process = process
        self.parked: dict[str, ParkedCall] = {}

    async def call(
        self,
        session: ClientSession,
        backend: str,
        method: str,
        params: dict[str, Any],
        emit: Emit,
        hold: Hold,
    ) -> dict[str, Any] | None:
        """The call's answer: its result, or ``input_required`` while the backend waits.

        ``hold(collector)`` makes the client's cancellation reach what is waited on."""
        digest = request_digest(method, params)
        if "requestState" in params:
            return await self._resume(session, params, digest, emit, hold)
        call = ParkedCall(session, backend, self.relay, secrets.token_urlsafe(12))
        call.digest = digest
        call.emit = emit
        upstream_id = self.exchange.next_id()
        call.collector = Collector(upstream_id, call.incoming)
        hold(call.collector)
        work = self.exchange.request(session, backend, upstream_id, method, params, call.collector)
        ensureDeferred(work).addBoth(call.finished)
        return await self._next(call, session, None)

    async def _resume(
        self,
        session: ClientSession,
        params: dict[str, Any],
        digest: str,
        emit: Emit,
        hold: Hold,
    ) -> dict[str, Any] | None:
        """A retry: its answers go to the backend, then the call goes on."""
        principal = session.principal
        try:
            state = self.codec.open(
                params["requestState"],
                principal.issuer,
                principal.subject,
                digest,
                self.clock.seconds(),
            )
        except InvalidState as error:
            raise _invalid(str(error), "invalid_request_state") from None
        if state.process != self.process:
            if state.peer_url is None:
                raise _invalid(
                    "the parked call is held by another aigw process, and sessions.peer_url "
                    "does not say where it is reachable",
                    "parked_elsewhere",
                )
            raise ParkedElsewhere(state.peer_url)
        call = self.parked.get(state.key)
        if call is None or call.busy:
            raise _invalid(
                "the parked call is gone (it ended, expired, or this process restarted)"
                if call is None
                else "the parked call is being resumed by another retry",
                "parked_call_gone",
            )
        responses = params.get("inputResponses")
        if not isinstance(responses, dict):
            responses = {}
        call.busy = True
        if call.timer is not None and call.timer.active():
            call.timer.cancel()  # resumed: the wait is the retry's now
        try:
            for key, value in responses.items():
                if key in call.asked and isinstance(value, dict):
                    upstream_id, _ = call.asked.pop(key)
                    answer = jsonrpc.result_response(upstream_id, value)
                    await self.exchange.answer(call.session, call.backend, answer)
            call.emit = emit
            return await self._next(call, session, hold)
        finally:
            call.busy = False

    async def _next(
        self, call: ParkedCall, session: ClientSession, hold: Hold | None
    ) -> dict[str, Any] | None:
        """Wait for the call's end (its answer) or for questions (``input_required``).

        ``hold``: a retry's, whose going away leaves the call parked (the first request's
        cancellation, through the upstream collector, ends the call)."""
        while not call.outcome and not self._refuse_unanswerable(call, session):
            waiting = call.changed()
            holder = Collector(0)
            holder.pending = waiting
            if hold is not None:
                hold(holder)
            try:
                await waiting
            except CancelledError:
                call.emit = _drop
                self._arm(call, session)
                return None  # the retry went away; the call stays parked
        call.emit = _drop
        if call.outcome:
            self._unpark(call)
            outcome = call.outcome[0]
            if isinstance(outcome, Failure):
                outcome.raiseException()
            return outcome
        return self._park(call, session)

    def _refuse_unanswerable(self, call: ParkedCall, session: ClientSession) -> bool:
        """Refuse the questions this client cannot answer (it did not declare their
        capability, or too many calls are parked); whether questions remain to ask."""
        full = call.key not in self.parked and (
            len(self.parked) >= session.snapshot.config.sessions.max_parked
        )
        for key, (upstream_id, request) in list(call.asked.items()):
            method = request["method"]
            if full:
                refused = refusal(
                    upstream_id,
                    method,
                    "aigw holds too many parked calls (sessions.max_parked)",
                    "parked_calls_full",
                )
            elif lacking := missing(session.input_capabilities, method, request.get("params")):
                refused = capability_refusal(upstream_id, method, lacking)
            else:
                continue
            del call.asked[key]
            upstream_session = call.session.backends.get(call.backend)
            self.exchange.refuse(upstream_session, call.session.principal, refused)
        return bool(call.asked)

    def _park(self, call: ParkedCall, session: ClientSession) -> dict[str, Any]:
        """Hold the call for the client's retry; the ``input_required`` that asks it."""
        bounds = session.snapshot.config.sessions
        self.parked[call.key] = call
        self._arm(call, session)
        state = ParkState(
            self.process,
            bounds.peer_url,
            call.key,
            self.clock.seconds() + bounds.park_timeout,
            call.digest,
        )
        principal = session.principal
        result = {
            "resultType": "input_required",
            "inputRequests": {key: request for key, (_, request) in call.asked.items()},
            "requestState": self.codec.seal(state, principal.issuer, principal.subject),
        }
        return {"jsonrpc": "2.0", "id": None, "result": result}

    def _arm(self, call: ParkedCall, session: ClientSession) -> None:
        """The parked call ends ``sessions.park_timeout`` from now unless resumed."""
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        timeout = session.snapshot.config.sessions.park_timeout
        call.timer = self.clock.callLater(timeout, self._expire, call)

    def _unpark(self, call: ParkedCall) -> None:
        self.parked.pop(call.key, None)
        if call.timer is not None and call.timer.active():
            call.timer.cancel()

    def _expire(self, call: ParkedCall) -> None:
        """No retry came in time: the upstream call is cancelled (basic/utilities/
        cancellation), as when a client goes away."""
        self.parked.pop(call.key, None)
        collector = call.collector
        if collector is None or call.outcome:
            return
        work = self.exchange.cancel(
            call.session, call.backend, collector, "input not given in time"
        )
        ensureDeferred(work).addErrback(lambda f: self.log.failure("cancelling", f))

    def __len__(self) -> int:
        return len(self.parked)


def _invalid(text: str, reason: str) -> GatewayError:
    """mrtr "Server Requirements" 4: state that fails verification is rejected."""
    return GatewayError(jsonrpc.INVALID_PARAMS, text, {"reason": reason})
