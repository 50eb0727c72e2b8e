"""An upstream stream kept open for a while after its last client stream closed.

MCP SDK servers allow one GET stream per session and answer a second with 409
while the first is open (2025-11-25 basic/transports "Listening for Messages from
the Server": the server MAY keep one stream per session; server-everything says "Only
one SSE stream is allowed per session").  A client that closes its GET stream or its
2026-07-28 ``subscriptions/listen`` (basic/patterns/subscriptions) and opens it again
at once made aigw close the upstream stream and open a new one on the same upstream
session before the backend had seen the first one go: 409, a retry after the
back-off, and the notifications of that half second lost unless the backend
replays them (basic/transports "Resumability and Redelivery" is optional, and
2026-07-28 streams have none).  So the stream lingers (``backends[].stream_linger``)
for the next client stream of the same upstream session, the same user's (the
feed's key says whose), and what the backend sends meanwhile is held for it.

A GET stream resuming with ``Last-Event-ID`` (basic/transports "Resumability and
Redelivery") takes it when it resumes from where the last one left off, or from one of
the ``RECENT`` messages last delivered (``after``): lost in flight, they are sent again.
From further back the backend replays, once the lingering stream is closed
(``streams.Feeds.subscribe``).

A backend's request among what is held (roots/list, sampling, elicitation:
2025-11-25 basic/transports "Listening for Messages from the Server") waits for
an answer: one that no client stream takes (the linger ends without one, or it is
dropped past ``MAX_HELD``) is answered with an error at once (``jsonrpc.is_request``;
``Relay.unreachable``), not left to the backend's own timeout.  A ping is not held:
aigw answers it at once (``protocol/ping.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from aigw.protocol import jsonrpc

#: The most messages held for the next client stream; past it the oldest are dropped
#: (and counted).
MAX_HELD = 100
#: And the most bytes of them (as aigw writes them): a backend's messages are each up to
#: ``max_message_bytes`` (16 MiB by default), a hundred of them 1.6 GB per lingering feed.
#: Past it the oldest are dropped too, but the newest is always held.
MAX_HELD_BYTES = 8 * 1024 * 1024

#: The most messages a feed keeps of those it last delivered (``UpstreamFeed.recent``),
#: to send again to a client stream that resumes from a little before where the last one
#: left off: it lost them in flight (written to a connection the client had closed).
RECENT = 16
#: And the most bytes of them, for every open feed (``Recent``).
RECENT_BYTES = 1024 * 1024

#: A held message and the backend's event id it came with (None: the stream has none).
#: A message of None: the stream's event id moved without one (a priming event: MCP
#: 2025-11-25 basic/transports, SEP-1699), which the client stream must learn all the same.
Held = tuple[Any, str | None]


def weight(message: Any) -> int:
    """A message's size as aigw writes it (what it costs to keep, within a small factor)."""
    return len(jsonrpc.dumps(message))


class Measured(Sequence[Held]):
    """Messages oldest first, each with its size (``weight``), and their total: what
    ``Recent`` and ``Linger`` bound in count and in bytes."""

    def __init__(self) -> None:
        self._items: deque[Held] = deque()
        self._sizes: deque[int] = deque()
        #: The sum of the messages' sizes.
        self.size = 0

    def add(self, held: Held) -> None:
        """``held`` becomes the newest."""
        size = weight(held[0])
        self._items.append(held)
        self._sizes.append(size)
        self.size += size

    def trim(self, count: int, size: int) -> list[Held]:
        """The oldest dropped until at most ``count`` messages and ``size`` bytes are
        left, the newest always kept; what was dropped, oldest first."""
        dropped = []
        while len(self._items) > count or (self.size > size and len(self._items) > 1):
            dropped.append(self._items.popleft())
            self.size -= self._sizes.popleft()
        return dropped

    def pop(self) -> Held:
        """The newest, taken out."""
        self.size -= self._sizes.pop()
        return self._items.pop()

    def clear(self) -> None:
        self._items.clear()
        self._sizes.clear()
        self.size = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Held]:
        return iter(self._items)

    @overload
    def __getitem__(self, index: int) -> Held: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Held]: ...

    def __getitem__(self, index: int | slice) -> Held | Sequence[Held]:
        if isinstance(index, slice):
            return list(self._items)[index]
        return self._items[index]


class Recent(Measured):
    """The last messages a feed delivered with an event id, oldest first: at most
    ``RECENT`` of them and ``RECENT_BYTES``.  A message larger than that is not kept, nor
    anything before it: what is kept is always the tail of what was delivered, so a
    stream resuming from before it finds no id here (``after``) and the backend replays.
    ``pop`` takes the newest out when it is about to be delivered, and kept, again."""

    def append(self, held: Held) -> None:
        self.add(held)
        self.trim(RECENT, RECENT_BYTES)
        if self.size > RECENT_BYTES:  # the newest alone is larger than the bound
            self.clear()


class Linger:
    """One feed's time without client streams: ``expire`` is called after ``seconds``
    unless ``end`` comes first; messages that arrive meanwhile are held."""

    def __init__(
        self,
        clock: IReactorTime,
        seconds: float,
        expire: Callable[[], None],
        since: str | None,
    ) -> None:
        #: The backend's last event id as the last client stream left: a stream
        #: resuming from another point is not served from what is held.
        self.since = since
        self.held = Measured()
        self.dropped = 0
        self._timer: IDelayedCall = clock.callLater(seconds, expire)

    def hold(self, message: Any, event_id: str | None) -> list[Held]:
        """Hold ``message``; the oldest held messages that were dropped for it (past
        ``MAX_HELD`` or ``MAX_HELD_BYTES``; never ``message`` itself).  An event id alone
        (message None) dropped loses nothing: the ids held after it are later."""
        self.held.add((message, event_id))
        dropped = [held for held in self.held.trim(MAX_HELD, MAX_HELD_BYTES) if held[0] is not None]
        self.dropped += len(dropped)
        return dropped

    def end(self) -> list[Held]:
        """The linger is over (a client stream took the feed, or the feed closed):
        what was held, oldest first."""
        if self._timer.active():
            self._timer.cancel()
        held = list(self.held)
        self.held.clear()
        return held


def after(recent: Sequence[Held], last_event_id: str) -> list[Held] | None:
    """The messages of ``recent`` (oldest first) delivered after the one that
    ``last_event_id`` names, or None if none does.  Messages without an id of their own
    bear the one before (SSE keeps the last event id), so the last that bears it counts."""
    for index in range(len(recent) - 1, -1, -1):
        if recent[index][1] == last_event_id:
            return list(recent)[index + 1 :]
    return None
