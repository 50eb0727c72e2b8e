"""``subscriptions/listen`` for 2026-07-28 clients, fed by session-based backends.

2026-07-28 replaces the GET stream and ``resources/subscribe`` with one
long-lived request (basic/patterns/subscriptions).  aigw answers it with an SSE
stream: first ``notifications/subscriptions/acknowledged`` with the filter it
honours, then the change notifications the client asked for, taken from the
GET streams of the user's pooled upstream sessions (the same merge as the
legacy GET stream, ``streams.py``).  Resource subscriptions are made upstream
with ``resources/subscribe`` on those sessions, and in the filter of aigw's own
listen toward a 2026-07-28 backend (``resource_subscriptions.py``); they are
left in place when the stream ends, because another listen of the same user may
share the session (or the upstream listen), and they go with the pooled session
when it expires (bounded, for the listen).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aigw.gateway.errors import GatewayError, InsufficientScope
from aigw.gateway.streams import Feeds, SessionStream
from aigw.protocol import jsonrpc
from aigw.protocol.sse import format_event
from aigw.protocol.versions import META_SUBSCRIPTION_ID, is_modern

if TYPE_CHECKING:
    from aigw.gateway.calls import Calls
    from aigw.gateway.client_sessions import ClientSession
    from aigw.gateway.exchange import Exchange
    from aigw.gateway.relay import ToClient
    from aigw.sealed.event_id import EventIdCodec

#: streamable-http "Receiving Messages", Note: comments keep a quiet stream open.

#: Filter flag -> the notification it lets through (subscriptions "Notification Filter").
LIST_FLAGS = {
    "toolsListChanged": "notifications/tools/list_changed",
    "promptsListChanged": "notifications/prompts/list_changed",
    "resourcesListChanged": "notifications/resources/list_changed",
}
UPDATED = "notifications/resources/updated"


class ListenFilter:
    """What one listen lets through: the honoured subset of what the client asked."""

    def __init__(self, methods: set[str], uris: list[str]) -> None:
        self.methods = methods
        self.uris = uris

    def allows(self, message: dict[str, Any]) -> bool:
        method = message.get("method")
        if method == UPDATED:
            params = message.get("params")
            return isinstance(params, dict) and params.get("uri") in self.uris
        return method in self.methods

    def acknowledged(self) -> dict[str, Any]:
        honoured: dict[str, Any] = {f: True for f, m in LIST_FLAGS.items() if m in self.methods}
        if self.uris:
            honoured["resourceSubscriptions"] = list(self.uris)
        return honoured


async def open_filter(
    calls: Calls, exchange: Exchange, session: ClientSession, params: Any
) -> ListenFilter:
    """The honoured filter; subscribes upstream to each resource the user may read.

    URIs are checked like ``resources/read`` (the body decides: backend,
    scopes, access policy); a URI aigw cannot route or the user may not read
    is left out of the acknowledgment rather than failing the stream.
    """
    wanted = params.get("notifications") if isinstance(params, dict) else None
    if wanted is None:
        wanted = {}
    if not isinstance(wanted, dict):
        raise GatewayError(
            jsonrpc.INVALID_PARAMS, "subscriptions/listen: notifications must be an object"
        )
    methods = {m for flag, m in LIST_FLAGS.items() if wanted.get(flag) is True}
    uris: list[str] = []
    requested = wanted.get("resourceSubscriptions") or []
    if not isinstance(requested, list):
        raise GatewayError(jsonrpc.INVALID_PARAMS, "resourceSubscriptions must be an array of URIs")
    for uri in requested:
        if isinstance(uri, str) and await _subscribe(calls, exchange, session, uri):
            uris.append(uri)
    return ListenFilter(methods, uris)


async def _subscribe(calls: Calls, exchange: Exchange, session: ClientSession, uri: str) -> bool:
    try:
        route = calls.route(session, "resources/subscribe", {"uri": uri})
    except (GatewayError, InsufficientScope):
        return False
    if route is None:
        return False
    backend, upstream_params, _ = route
    subscribes = session.backends.get(backend)
    if subscribes is None or not subscribes.capabilities.get("resources", {}).get("subscribe"):
        return False
    if is_modern(subscribes.protocol_version):
        # A 2026-07-28 backend: the URI goes into aigw's own listen toward it.
        try:
            calls.subscriptions.answer(
                session.binding,
                backend,
                "resources/subscribe",
                upstream_params["uri"],
                subscribes.capabilities,
            )
        except GatewayError:
            return False  # over the bound: left out of the acknowledgment
        return True
    answer = await exchange.ask(session, backend, "resources/subscribe", upstream_params)
    return answer is not None and "result" in answer


class ListenStream(SessionStream):
    """The upstream GET streams of the user's sessions, filtered, tagged with the
    subscription id (the listen request's id), without event ids (2026-07-28
    streams are not resumable)."""

    def __init__(
        self,
        feeds: Feeds,
        to_client: ToClient,
        session: ClientSession,
        write: Callable[[bytes], None],
        subscription_id: Any,
        notifications: ListenFilter,
        refuse: Callable[[dict[str, Any]], None],
        event_ids: EventIdCodec,
    ) -> None:
        super().__init__(feeds, to_client, session, write, event_ids, {})
        self.subscription_id = subscription_id
        self.notifications = notifications
        self.refuse = refuse

    def receive(self, name: str, message: Any, event_id: str | None) -> None:
        """A message of one backend's feed; an event id alone (a 2025-11-25 backend's
        priming event, ``UpstreamFeed._moved``) is nothing to a listen, whose stream
        carries no ids (2026-07-28 removed resumability)."""
        if message is not None:
            super().receive(name, message, event_id)

    def tag(self, message: dict[str, Any]) -> dict[str, Any]:
        params = message.get("params")
        params = dict(params) if isinstance(params, dict) else {}
        meta = params.get("_meta")
        params["_meta"] = {
            **(meta if isinstance(meta, dict) else {}),
            META_SUBSCRIPTION_ID: self.subscription_id,
        }
        return {**message, "params": params}

    def acknowledge(self) -> None:
        """subscriptions "Acknowledgment": first on the stream, before any notification."""
        params = {"notifications": self.notifications.acknowledged()}
        acknowledged = jsonrpc.notification("notifications/subscriptions/acknowledged", params)
        self._send(self.tag(acknowledged))

    def completion(self) -> bytes:
        """subscriptions "Graceful Closure": the listen request's own response."""
        result = {"resultType": "complete", "_meta": {META_SUBSCRIPTION_ID: self.subscription_id}}
        message = jsonrpc.result_response(self.subscription_id, result)
        return format_event(jsonrpc.dumps(message))

    def _emit(self, message: dict[str, Any]) -> None:
        # Backend requests (with an id) have no place on a listen stream
        # (streamable-http "Receiving Messages"): the backend is told so.
        if "id" in message:
            self.refuse(message)
            return
        if not self.notifications.allows(message):
            return
        self._send(self.tag(message))

    def _send(self, message: dict[str, Any]) -> None:
        self.write(format_event(jsonrpc.dumps(message)))
