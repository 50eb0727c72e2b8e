"""``resources/subscribe`` from a session client to a backend that speaks only 2026-07-28.

2026-07-28 has no ``resources/subscribe``: a client names the resources it
follows in the ``resourceSubscriptions`` of its ``subscriptions/listen``
(basic/patterns/subscriptions "Notification Filter"), and the backend sends
``notifications/resources/updated`` on that stream.  aigw already listens to
such a backend in place of the GET stream it lacks (``streams.py``); a session
client's subscriptions are the URIs that listen asks for.  A filter is fixed
when the listen is sent, so a change re-sends it: the feed's listen is closed
and opened again with the new filter (an update in between is lost, which
2026-07-28 allows: its streams are not resumable and clients refetch).

The subscriptions of a session live in the process that answered its
``resources/subscribe`` (the session id cannot change after ``initialize``, so
it cannot carry them), bounded per session and in number of sessions: a GET
stream served by another process listens without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aigw.gateway.errors import GatewayError
from aigw.lru import LRU
from aigw.protocol import jsonrpc

#: Resources one session may follow on one backend (each is a URI in a listen filter).
MAX_PER_BACKEND = 64
#: Sessions whose subscriptions this process remembers.
SESSIONS_MAX = 10000
SUBSCRIPTION_METHODS = ("resources/subscribe", "resources/unsubscribe")

#: (client binding, backend) -> the URIs, in the backend's own names, in order.
Key = tuple[str, str]


class ResourceSubscriptions:
    """Session clients' resource subscriptions on 2026-07-28 backends."""

    def __init__(self, changed: Callable[[str, str], None]) -> None:
        """``changed(binding, backend)``: the filter of that listen is no longer right."""
        self.changed = changed
        self._uris: LRU[Key, list[str]] = LRU(SESSIONS_MAX)

    def uris(self, binding: str, backend: str) -> list[str]:
        return list(self._uris.get((binding, backend)) or [])

    def answer(
        self, binding: str, backend: str, method: str, uri: str, capabilities: dict[str, Any]
    ) -> dict[str, Any]:
        """``resources/subscribe`` or ``resources/unsubscribe``: the result, once the
        listen toward the backend is being re-sent with the new filter."""
        resources = capabilities.get("resources")
        if not isinstance(resources, dict) or resources.get("subscribe") is not True:
            # server/resources "Capabilities": subscriptions only where offered.
            raise GatewayError(
                jsonrpc.INVALID_REQUEST,
                f"{method}: backend {backend!r} offers no resource subscriptions",
                {"backend": backend, "reason": "no_subscriptions"},
            )
        key = (binding, backend)
        uris = self._uris.get(key) or []
        if method == "resources/subscribe":
            if uri in uris:
                return {}
            if len(uris) >= MAX_PER_BACKEND:
                raise GatewayError(
                    jsonrpc.INVALID_REQUEST,
                    f"resources/subscribe: at most {MAX_PER_BACKEND} subscriptions per "
                    f"backend and session; unsubscribe from one first",
                    {"backend": backend, "reason": "too_many_subscriptions"},
                )
            self._uris.put(key, [*uris, uri])
        else:
            if uri not in uris:
                return {}  # server/resources: nothing to undo is not an error
            remaining = [u for u in uris if u != uri]
            if remaining:
                self._uris.put(key, remaining)
            else:
                self._uris.pop(key)
        self.changed(binding, backend)
        return {}
