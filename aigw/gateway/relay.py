"""Server-to-client messages: what a backend sends besides its answer, and the way back.

Backends send notifications (progress, list changes, resource updates) and
requests (sampling, elicitation, roots: MCP 2025-11-25 client/*) while a request
is in flight or on their GET stream.  They reach the client rewritten to the
names it knows, and a request's id is sealed so that the client's answer finds
its way back to the backend that asked (``sealed/request_id.py``).  A ``ping`` is
aigw's to answer, never relayed (``protocol/ping.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from aigw.gateway.log_levels import passes
from aigw.protocol import jsonrpc
from aigw.protocol.client_capabilities import missing
from aigw.protocol.names import expose_uri
from aigw.protocol.refusals import capability_refusal, refusal
from aigw.sealed.request_id import InvalidId, RequestIdCodec

if TYPE_CHECKING:
    from aigw.gateway.asking import Questions
    from aigw.gateway.client_sessions import ClientSession
    from aigw.gateway.exchange import Exchange
    from aigw.principal import Principal
    from aigw.sealed.session_id import BackendSession

#: basic/utilities/cancellation: a backend's names a request it sent (``Relay._cancelled``).
CANCELLED = "notifications/cancelled"

#: A callable that sends one JSON-RPC message to the client now (progress,
#: server-to-client requests); the transport turns the reply into SSE for it.
Emit = Callable[[dict[str, Any]], None]
#: ``Relay.to_client``, as the streams take it.
ToClient = Callable[["ClientSession", str, Any, Emit], None]


class Relay:
    """Passes backends' messages on to the client, and the client's answers back."""

    log = Logger()

    def __init__(
        self, request_ids: RequestIdCodec, exchange: Exchange, questions: Questions
    ) -> None:
        self.request_ids = request_ids
        self.exchange = exchange
        #: aigw's own requests to clients (``asking.py``), whose answers stay here.
        self.questions = questions

    def to_client(self, session: ClientSession, backend: str, message: Any, emit: Emit) -> None:
        """A message from the backend that is not our answer: pass it on, rewritten."""
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            self.log.debug("backend {backend} sent a stray message", backend=backend)
            return
        if "id" in message:
            if not jsonrpc.is_request(message):
                # No JSON-RPC id (an object, an array): no answer could name it.
                self.log.info(
                    "backend {backend} sent a {method} request whose id is not a JSON-RPC "
                    "id; dropped",
                    backend=backend,
                    method=message["method"],
                )
                return
            if self.exchange.pinged(session.backends.get(backend), session.principal, message):
                return
            if not session.sessionless and self._refused(session, backend, message):
                return
            # A server-to-client request: the id is sealed so the answer finds its way back
            # and a client cannot forge routing to another backend.
            message = {
                **message,
                "id": self.request_ids.wrap(backend, message["id"], session.binding),
            }
        elif not passes(session, message):
            return  # a log message the 2026-07-28 request did not ask for (log_levels.py)
        elif message["method"] == CANCELLED:
            message = self._cancelled(session, backend, message)
        emit(_rewrite_notification(backend, message))

    def _cancelled(
        self, session: ClientSession, backend: str, message: dict[str, Any]
    ) -> dict[str, Any]:
        """A backend cancelling a request it sent names it by its own id; the client got
        it sealed (basic/utilities/cancellation: the notification carries the ID of the
        request to cancel, as its receiver knows it), and sealing is deterministic, so
        the same id seals to the token the client saw.  An id this backend never sent
        seals to one the client has not; one that is no id is left for it to judge."""
        params = message.get("params")
        if not isinstance(params, dict):
            return message
        request_id = params.get("requestId")
        if not jsonrpc.is_request_id(request_id):
            return message
        sealed = self.request_ids.wrap(backend, request_id, session.binding)
        return {**message, "params": {**params, "requestId": sealed}}

    def _refused(self, session: ClientSession, backend: str, message: dict[str, Any]) -> bool:
        """A request the client did not declare it can answer is answered here, for the
        client, with an error naming the capability (``protocol/client_capabilities.py``):
        relayed, it would reach a client that cannot take it.  A session id that does
        not say (issued before aigw sealed the capabilities) relays everything."""
        declared = session.state.client_capabilities
        if declared is None:
            return False
        lacking = missing(declared, message["method"], message.get("params"))
        if lacking is None:
            return False
        self.log.info(
            "backend {backend} asked for {capability}, which the client did not declare",
            backend=backend,
            capability=lacking,
        )
        refused = capability_refusal(message["id"], message["method"], lacking)
        self.exchange.refuse(session.backends.get(backend), session.principal, refused)
        return True

    def unreachable(
        self,
        upstream: BackendSession,
        principal: Principal,
        message: dict[str, Any],
        why: str,
        reason: str,
    ) -> None:
        """A backend's request that no client stream took (``linger.py``) is answered
        here, at once, as one a client cannot take is (``_refused``, and a 2026-07-28
        client's listen): with a ``refusal`` naming why, so the backend does not
        wait for its own timeout (2025-11-25 basic/transports "Listening for Messages
        from the Server": a request sent on the stream expects its response by POST).
        A ping never comes here: a lingering feed answers it at once (``Feeds.pinged``)."""
        method = message.get("method")
        self.log.info(
            "backend {backend}'s {method} reached no client: {why}",
            backend=upstream.name,
            method=method,
            why=why,
        )
        self.exchange.refuse(upstream, principal, refusal(message["id"], method, why, reason))

    async def to_backend(self, session: ClientSession, message: Any) -> None:
        """The client's answer to a relayed server-to-client request goes back to its backend;
        its answer to one of aigw's own requests, to the call waiting for it."""
        try:
            _, key, _ = self.request_ids.unwrap_own(message.id, session.binding)
        except InvalidId:
            pass
        else:
            if not self.questions.answer(key, jsonrpc.to_dict(message)):
                self.log.info("client answered a question no call here waits for; dropped")
            return
        try:
            backend, upstream_id = self.request_ids.unwrap(message.id, session.binding)
        except InvalidId:
            self.log.info("client answered an unknown or forged request id; dropped")
            return
        payload = jsonrpc.to_dict(message)
        payload["id"] = upstream_id
        await self.exchange.answer(session, backend, payload)


def _rewrite_notification(backend: str, message: dict[str, Any]) -> dict[str, Any]:
    """Notifications that name a resource name it as the client knows it."""
    params = message.get("params")
    if (
        message.get("method") == "notifications/resources/updated"
        and isinstance(params, dict)
        and isinstance(params.get("uri"), str)
    ):
        return {**message, "params": {**params, "uri": expose_uri(backend, params["uri"])}}
    return message
