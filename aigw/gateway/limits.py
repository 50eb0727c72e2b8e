"""Bounds on the long-lived server-to-client streams aigw keeps open.

A client stream (the 2025-11-25 GET stream, a 2026-07-28 ``subscriptions/listen``)
lasts as long as the client wants, and holds a client socket plus, per backend,
an upstream stream (shared between the streams of one user, ``streams.py``).
Without a bound one user could open streams until the process runs out of file
descriptors and every other request fails.  Three bounds, checked in this order:

* per session, GET streams only: one.  aigw's GET stream carries every backend's
  stream of the session, and MCP SDK servers allow one GET stream per session
  (they answer a second with 409); 2025-11-25 basic/transports "Multiple
  Connections" lets the server send each message on one stream only, so a
  second stream of the same session would carry nothing.  Refused with 409, once
  the held one was probed and lives (``Gateway.get_stream_slot``, ``stream_probes.py``).
* per user (``sessions.max_streams_per_user``): refused with 429.
* per process (``server.max_streams``): refused with 503.

A slot is taken before anything is written or subscribed and released, once,
however the stream ends (client gone, shutdown, error).

With ``limits.redis_url`` the first two bounds hold across every process: a stream's
place under each is a lease in Redis, taken by the limiter's store in one call and
renewed while the stream is open (``redis_buckets.py``), so a second GET stream of a
session is refused on any process and a user holds ``max_streams_per_user`` streams in
all.  The process bound stays in the process (it guards this process's descriptors)
and is checked first.  When Redis cannot answer, ``limits.on_redis_error`` decides:
``open`` falls back to this process's counts (the bounds as without Redis), ``closed``
refuses with 503.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from aigw.gateway.ratelimit import (
    NO_PERMIT,
    Limiter,
    Permit,
    Slot,
    hashed_key,
)
from aigw.gateway.store_failures import StoreUnavailable
from aigw.principal import UserKey

#: GET streams one 2025-11-25 session may hold (see the module docstring).
MAX_GET_STREAMS_PER_SESSION = 1
#: Retry-After of a 429/503 refusal: a stream slot frees when another stream ends,
#: which aigw cannot predict; long enough that a reconnect loop is not a busy loop.
RETRY_AFTER_SECONDS = 10


class StreamLimitReached(Exception):
    """A stream was refused: which bound, and the HTTP status to answer with."""

    def __init__(self, status: int, key: str, limit: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.key = key
        self.limit = limit
        self.message = message


class StreamSlot:
    """One open client stream's place in the counts (and, with Redis, its leases);
    ``release`` is idempotent."""

    def __init__(self, limits: StreamLimits, user: UserKey, session: str | None) -> None:
        self._limits = limits
        self.user = user
        self.session = session
        self.released = False
        self.permit: Permit = NO_PERMIT

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.permit.release()
        self._limits._release(self)


class StreamLimits:
    """Counts of open client streams: in all, per user, per session (GET streams).
    ``limiter``: the limiter whose shared store, if any, holds the user and session
    bounds (read at each stream: a reload may replace it)."""

    def __init__(
        self, max_streams: int, max_per_user: int, limiter: Callable[[], Limiter] | None = None
    ) -> None:
        self.max_streams = max_streams
        self.max_per_user = max_per_user
        self._limiter = limiter
        self.total = 0
        # Only keys with open streams are kept: the maps never outgrow the streams.
        self.per_user: Counter[UserKey] = Counter()
        self.per_session: Counter[str] = Counter()

    async def acquire(self, user: UserKey, session: str | None = None) -> StreamSlot:
        """A slot for one more stream of ``user`` (and of GET ``session``), or
        StreamLimitReached naming the bound that is reached."""
        limiter = self._limiter() if self._limiter is not None else None
        if limiter is None or limiter.shared is None:
            self._check(user, session)
            return self._count(user, session)
        if self.total >= self.max_streams:
            raise self._refusal("server.max_streams")
        slot = self._count(user, session)  # the process's place, kept while Redis answers
        try:
            slot.permit = await self._take_shared(limiter, slot)
        except BaseException:
            slot.release()
            raise
        return slot

    async def _take_shared(self, limiter: Limiter, slot: StreamSlot) -> Permit:
        """The slot's leases under the session and user bounds in the shared store."""
        issuer, subject = slot.user
        slots = [Slot(hashed_key("aigw:st:user", f"{issuer}\n{subject}"), self.max_per_user)]
        bounds = ["sessions.max_streams_per_user"]
        if slot.session is not None:
            key = hashed_key("aigw:st:get", slot.session)
            slots.insert(0, Slot(key, MAX_GET_STREAMS_PER_SESSION))
            bounds.insert(0, "session")
        shared = limiter.shared
        assert shared is not None
        try:
            taken = await shared.take([], slots)
        except StoreUnavailable as error:
            if limiter.failed_take(error):
                raise StreamLimitReached(
                    503,
                    "limits.redis_url",
                    None,
                    "the stream limiter is unavailable; retry later",
                ) from None
            self._check(slot.user, slot.session, counted=1)  # as without Redis
            return NO_PERMIT
        if taken.refused is None:
            return taken.permit
        raise self._refusal(bounds[taken.refused])

    def _check(self, user: UserKey, session: str | None, counted: int = 0) -> None:
        """The bounds counted in this process; ``counted``: the stream asking is
        already in the counts."""
        in_session = self.per_session[session] if session is not None else 0
        if session is not None and in_session - counted >= MAX_GET_STREAMS_PER_SESSION:
            raise self._refusal("session")
        if self.per_user[user] - counted >= self.max_per_user:
            raise self._refusal("sessions.max_streams_per_user")
        if self.total - counted >= self.max_streams:
            raise self._refusal("server.max_streams")

    def _refusal(self, key: str) -> StreamLimitReached:
        if key == "session":
            return StreamLimitReached(
                409,
                "session",
                MAX_GET_STREAMS_PER_SESSION,
                "Conflict: this session already has an open GET stream",
            )
        if key == "sessions.max_streams_per_user":
            return StreamLimitReached(
                429,
                "sessions.max_streams_per_user",
                self.max_per_user,
                f"too many open streams for this user (at most {self.max_per_user}); "
                "close one or retry later",
            )
        return StreamLimitReached(
            503,
            "server.max_streams",
            self.max_streams,
            "the gateway has as many open streams as it serves; retry later",
        )

    def _count(self, user: UserKey, session: str | None) -> StreamSlot:
        self.total += 1
        self.per_user[user] += 1
        if session is not None:
            self.per_session[session] += 1
        return StreamSlot(self, user, session)

    def _release(self, slot: StreamSlot) -> None:
        self.total -= 1
        self.per_user[slot.user] -= 1
        if self.per_user[slot.user] <= 0:
            del self.per_user[slot.user]
        if slot.session is not None:
            self.per_session[slot.session] -= 1
            if self.per_session[slot.session] <= 0:
                del self.per_session[slot.session]


#: Descriptors a process needs besides its streams: listeners, log files, the
#: ordinary requests and their upstream connections.
FD_RESERVE = 256


def fd_shortfall(max_streams: int, backends: int, soft_limit: int) -> int | None:
    """The descriptors needed when every stream slot is taken (a client socket and
    one upstream socket per backend each) and as many upstream streams linger for
    closed ones (``streams.Feeds.lingers``), plus ``FD_RESERVE``, if ``soft_limit``
    is below that; None when the limit suffices (or is unlimited, negative)."""
    needed = max_streams * (2 + backends) + FD_RESERVE
    if soft_limit < 0 or soft_limit >= needed:
        return None
    return needed
