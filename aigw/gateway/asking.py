"""aigw asks a session client what a 2026-07-28 backend needs (basic/patterns/mrtr).

A 2026-07-28 backend that needs the client's input answers ``input_required``
with ``inputRequests`` and, maybe, ``requestState``.  A client of the session
revisions cannot read that result, but it can answer server-to-client requests
on the call's response stream (2025-11-25 basic/transports "Sending Messages to
the Server" 6; client/sampling, client/elicitation, client/roots).  So aigw
sends each input request to the client itself, with an id naming this process
and the question (``sealed/request_id.py``), waits for the answers, and retries
the call upstream with ``inputResponses`` and the backend's ``requestState``
echoed byte for byte ("Client Requirements" 1-3), round after round.

The client's capabilities travel in its sealed session id, so whichever process
serves the call knows what it may ask.  Rounds and the wait for each are bounded
(``sessions.input_max_rounds``, ``sessions.input_timeout``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, FirstError, TimeoutError
from twisted.logger import Logger

from aigw.gateway.errors import GatewayError
from aigw.gateway.input_required import is_input_required
from aigw.protocol import jsonrpc
from aigw.protocol.client_capabilities import missing
from aigw.sealed.request_id import InvalidId, RequestIdCodec

if TYPE_CHECKING:
    from aigw.gateway.client_sessions import ClientSession
    from aigw.gateway.relay import Emit

#: MCP 2026-07-28 basic/patterns/mrtr (the SDKs' MissingRequiredClientCapability):
#: the request needs a client capability the client did not declare.
MISSING_CLIENT_CAPABILITY = -32021
#: More input requests than this in one round is a backend gone wrong.
MAX_INPUT_REQUESTS = 32

#: Sends the call upstream again with these params: the backend's answer.
Retry = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]
#: Told the Deferred the call now waits on, so that cancelling the call cancels it.
Waiting = Callable[["Deferred[Any]"], None]


class Questions:
    """aigw's own requests to clients, waiting for their answers in this process."""

    log = Logger()

    def __init__(self, ids: RequestIdCodec, process: str) -> None:
        self.ids = ids
        #: This process's name in the ids it hands out (random per start).
        self.process = process
        self._waiting: dict[str, Deferred[dict[str, Any]]] = {}

    def ask(
        self, session: ClientSession, method: str, params: Any, emit: Emit
    ) -> Deferred[dict[str, Any]]:
        """Send ``method`` to the client now; the Deferred fires with its response."""
        key = secrets.token_urlsafe(12)
        answered: Deferred[dict[str, Any]] = Deferred(lambda _: self._forget(None, key))
        answered.addBoth(self._forget, key)
        self._waiting[key] = answered
        peer_url = session.snapshot.config.sessions.peer_url
        request_id = self.ids.wrap_own(self.process, key, session.binding, peer_url)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        emit(message)
        return answered

    def _forget(self, outcome: Any, key: str) -> Any:
        self._waiting.pop(key, None)
        return outcome

    def elsewhere(
        self, session: ClientSession, message: jsonrpc.Response | jsonrpc.ErrorResponse
    ) -> str | None:
        """Where to forward a client's answer to a question another process asked (its
        peer URL), None when it is not such an answer (docs/scale-out.md)."""
        try:
            process, _, peer_url = self.ids.unwrap_own(message.id, session.binding)
        except InvalidId:
            return None
        return peer_url if process != self.process else None

    def answer(self, key: str, message: dict[str, Any]) -> bool:
        """The client's response to question ``key``: False when nobody here waits for it."""
        waiting = self._waiting.pop(key, None)
        if waiting is None:
            return False
        waiting.callback(message)
        return True

    def __len__(self) -> int:
        return len(self._waiting)


class Asking:
    """Turns a 2026-07-28 backend's ``input_required`` into questions to a session client."""

    def __init__(self, questions: Questions, clock: Any) -> None:
        self.questions = questions
        self.clock = clock

    async def resolve(
        self,
        session: ClientSession,
        backend: str,
        params: dict[str, Any],
        message: dict[str, Any],
        emit: Emit,
        retry: Retry,
        waiting: Waiting,
    ) -> dict[str, Any] | None:
        """The backend's final answer, once the client answered every round."""
        bounds = session.snapshot.config.sessions
        rounds = 0
        while is_input_required(result := message.get("result") or {}):
            rounds += 1
            if rounds > bounds.input_max_rounds:
                raise _refusal(
                    backend,
                    "input_rounds",
                    f"backend {backend!r} asked for client input more than "
                    f"{bounds.input_max_rounds} times (sessions.input_max_rounds)",
                )
            responses = await self._ask_all(
                session, backend, result.get("inputRequests") or {}, emit, waiting
            )
            if responses is None:
                return None  # cancelled
            again = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
            if responses:
                again["inputResponses"] = responses
            if "requestState" in result:
                again["requestState"] = result["requestState"]  # "Client Requirements" 2
            answer = await retry(again)
            if answer is None:
                return None
            message = answer
        return message

    async def _ask_all(
        self,
        session: ClientSession,
        backend: str,
        requests: dict[str, Any],
        emit: Emit,
        waiting: Waiting,
    ) -> dict[str, Any] | None:
        """Every input request of one round asked at once; their results by key."""
        if len(requests) > MAX_INPUT_REQUESTS:
            raise _refusal(backend, "bad_reply", f"more than {MAX_INPUT_REQUESTS} input requests")
        for request in requests.values():
            _check_capability(session, backend, request["method"], request.get("params"))
        keys = list(requests)
        asked = [
            self.questions.ask(
                session, requests[k]["method"], _for_session_client(requests[k]), emit
            )
            for k in keys
        ]
        timeout = session.snapshot.config.sessions.input_timeout
        for pending in asked:
            pending.addTimeout(timeout, self.clock)
        together = DeferredList(asked, fireOnOneErrback=True, consumeErrors=True)
        waiting(together)  # cancelling it cancels every question
        try:
            results = await together
        except FirstError as error:
            for pending in asked:
                pending.cancel()
            if not error.subFailure.check(TimeoutError):
                return None  # the call was cancelled
            raise _refusal(
                backend,
                "input_timeout",
                f"the client did not answer {backend!r}'s input requests within "
                f"{timeout:g} s (sessions.input_timeout)",
            ) from None
        return {
            key: _result_of(backend, requests[key]["method"], response)
            for key, (_, response) in zip(keys, results, strict=True)
        }


def _for_session_client(request: dict[str, Any]) -> Any:
    """An input request's params as a session client reads them: a URL elicitation gets
    the ``elicitationId`` that 2025-11-25 requires (client/elicitation "URL Mode") and
    2026-07-28 dropped; aigw makes one up, opaque to the client as the spec says."""
    params = request.get("params")
    if (
        request.get("method") == "elicitation/create"
        and isinstance(params, dict)
        and params.get("mode") == "url"
        and "elicitationId" not in params
    ):
        return {**params, "elicitationId": secrets.token_urlsafe(12)}
    return params


def _check_capability(session: ClientSession, backend: str, method: str, params: Any) -> None:
    """basic/patterns/mrtr "Server Requirements" 7: only what the client declared
    (elicitation in the mode asked for)."""
    capability = missing(session.input_capabilities, method, params)
    if capability is None:
        return
    raise GatewayError(
        MISSING_CLIENT_CAPABILITY,
        f"backend {backend!r} asked for {method}, but the client did not declare the "
        f"{capability!r} capability",
        {"backend": backend, "reason": "missing_capability", "capability": capability},
    )


def _result_of(backend: str, method: str, response: dict[str, Any]) -> Any:
    """The client's result for an input request; its error fails the call (as the SDKs'
    drivers do: an input response is a result, never an error)."""
    error = response.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            code = jsonrpc.INTERNAL_ERROR
        raise GatewayError(
            code,
            f"the client refused {backend!r}'s {method}: {error.get('message')}",
            {"backend": backend, "reason": "input_refused"},
        )
    result = response.get("result")
    if not isinstance(result, dict):
        raise GatewayError(jsonrpc.INVALID_PARAMS, f"the client's answer to {method} is no result")
    return result


def _refusal(backend: str, reason: str, text: str) -> GatewayError:
    return GatewayError(jsonrpc.INVALID_REQUEST, text, {"backend": backend, "reason": reason})
