"""Resumable GET streams for ``pyserver --event-store`` (the ``mcp`` 2.x SDK).

2025-11-25 basic/transports "Resumability and Redelivery": a server with an event store
gives each SSE event an id, and a GET with ``Last-Event-ID`` gets that stream's events
after it, then the live ones.  SEP-1699 ("Sending Messages to the Server"): a server
starting an SSE stream SHOULD at once send a priming event (an id, empty data).

The SDK (``mcp`` 2.3) primes a POST's stream and a GET stream it resumes (after the
replay), but not a fresh GET stream: so ``PrimeGetStreams`` resumes a fresh one from a
cursor stored just then, which replays nothing and gets the SDK's priming event.  Its
one-stream rule differs on that path: a second GET while the first is open gets no 409
but an empty stream at once.  The store is one for every session, as the SDK's own
example's is (``EventStore`` hears of streams, not sessions; every session's standalone
stream is ``GET_STREAM_KEY``): a test of it uses one session.
"""

from __future__ import annotations

import itertools
import sys
from collections import deque
from typing import Any

from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    LAST_EVENT_ID_HEADER,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp_types import JSONRPCMessage

#: The events kept, oldest dropped first (a test sends a handful).
MAX_EVENTS = 1000
#: The line logged on stderr for each GET of a stream, then its ``Last-Event-ID``.
GET_LINE = "GET stream, Last-Event-ID"


class OrderedEventStore(EventStore):
    """Every stream's events in order, priming ones (no message) included: a resume
    from one gets the messages of its stream stored after it."""

    def __init__(self) -> None:
        self.events: deque[tuple[EventId, StreamId, JSONRPCMessage | None]] = deque(
            maxlen=MAX_EVENTS
        )
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = f"{stream_id}:{next(self._ids)}"
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        events = list(self.events)
        at = next((i for i, event in enumerate(events) if event[0] == last_event_id), None)
        if at is None:
            return None
        stream_id = events[at][1]
        for event_id, stream, message in events[at + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


class PrimeGetStreams:
    """ASGI wrapper: a session's GET without ``Last-Event-ID`` is resumed from a cursor
    stored now on the standalone stream, so the SDK primes it; each GET is logged on
    stderr (``GET_LINE`` and the id it resumes from, or ``(none)``)."""

    def __init__(self, app: Any, store: OrderedEventStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            headers = dict(scope["headers"])
            asked = headers.get(LAST_EVENT_ID_HEADER.encode())
            print(f"{GET_LINE} {asked.decode() if asked else '(none)'}", file=sys.stderr)
            if asked is None and b"mcp-session-id" in headers:
                cursor = await self.store.store_event(GET_STREAM_KEY, None)
                field = (LAST_EVENT_ID_HEADER.encode(), cursor.encode())
                scope = {**scope, "headers": [*scope["headers"], field]}
        await self.app(scope, receive, send)
