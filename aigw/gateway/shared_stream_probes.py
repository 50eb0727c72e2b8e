"""A session's GET stream probed, and its upstream streams handed over, across processes
(``sessions.redis_url``).

With ``limits.redis_url`` a session's one GET stream is a lease in Redis (``limits.py``),
so the process a reconnecting client's GET lands on may not be the one holding the
old stream, and only that one can write to it (``stream_probes.py``); and the old one
may keep the session's upstream streams lingering for a client stream that will not
come back to it (``streams.py``, ``linger.py``).  Three notes on the channel
``aigw:stream-probe`` (the subscription of ``ended_sessions.py``, one connection per
process), each naming the session by the hex SHA-256 of its id (never the id, a
credential):

* ``p <hex>``: a GET of that session was refused here; every process holding a stream
  of it probes that stream (one probe per session in flight in a process, however many
  ask);
* ``l <hex>``: a probe found that stream lost, its place given back; the GETs awaiting
  it take the place again;
* ``o <hex>``: a client stream of that session started; every process ends the
  session's upstream streams it keeps lingering (``Feeds.opened_elsewhere``), so the
  backend, which allows one GET stream per session, serves the new process's.  A
  process skips the echo of its own (``OWN_NOTES``): its stream, closed again at
  once, may be reopened here and take the linger.

A probe writes an SSE comment and ending a linger touches no client stream, so a note
needs no more than the session's digest.  The channel is written only by aigw
processes; still, a malformed note is ignored and counted with the store's failures
(``aigw_session_store_failures_total``).  When Redis fails the refused GET hears
nothing and is refused (409) after ``PROBE_WAIT + REPLY_MARGIN``, as without the
probe.
"""

from __future__ import annotations

from aigw.gateway.ended_sessions import EndedSessions, digest_of
from aigw.gateway.stream_probes import StreamProbes
from aigw.gateway.streams import Feeds
from aigw.lru import LRU

CHANNEL = b"aigw:stream-probe"
ASK = b"p"
LOST = b"l"
OPENED = b"o"
#: Sessions whose ``OPENED`` notes this process sent and has not heard back yet, at
#: most (beyond, the oldest is forgotten and its echo heard as another's; an echo that
#: never comes, Redis having failed, makes one other process's note skipped).
OWN_NOTES = 1024


async def check(shared: EndedSessions) -> None:
    """What ``aigw doctor`` asks of the store besides ``EndedSessions.check`` (which
    SUBSCRIBEs to ``CHANNEL`` once it is ``listen``ed to): PUBLISH on the channel, an
    ask for the all-zero digest, which no session id has (nobody probes).  Raises as
    the command fails."""
    await shared.command(b"PUBLISH", CHANNEL, note(ASK, bytes(32)))


def note(kind: bytes, digest: bytes) -> bytes:
    return kind + b" " + digest.hex().encode("ascii")


def read_note(payload: bytes) -> tuple[bytes, bytes] | None:
    """The kind (``ASK``, ``LOST``, ``OPENED``) and session digest of a note; None if it
    is none."""
    kind, _, named = payload.partition(b" ")
    digest = digest_of(named)
    if kind not in (ASK, LOST, OPENED) or digest is None:
        return None
    return kind, digest


class SharedStreamProbes:
    """Asks the others to probe; probes this process's streams when asked.  Tells the
    others of a session's client stream started here; ends this process's lingering
    upstream streams of a session when told."""

    def __init__(self, probes: StreamProbes, feeds: Feeds, shared: EndedSessions) -> None:
        """Follows ``CHANNEL`` on ``shared``'s subscription (before it starts)."""
        self._probes = probes
        self._feeds = feeds
        self._shared = shared
        #: Our ``OPENED`` notes on their way back to us, by session digest.
        self._own: LRU[bytes, int] = LRU(OWN_NOTES)
        probes.ask_others = self.ask
        feeds.tell_opened = self.opened
        shared.listen(CHANNEL, self._heard)

    def ask(self, digest: bytes) -> None:
        self._shared.publish(CHANNEL, note(ASK, digest), "asking for a held stream's probe")

    def opened(self, digest: bytes) -> None:
        self._own.put(digest, (self._own.get(digest) or 0) + 1)
        self._shared.publish(CHANNEL, note(OPENED, digest), "telling a stream was opened")

    def _heard(self, payload: bytes) -> None:
        read = read_note(payload)
        if read is None:
            self._shared.ignored("stream probe note", payload)
            return
        kind, digest = read
        if kind == LOST:
            self._probes.lost_elsewhere(digest)
        elif kind == OPENED:
            own = self._own.pop(digest)
            if own is None:
                self._feeds.opened_elsewhere(digest)
            elif own > 1:
                self._own.put(digest, own - 1)
        elif self._probes.held_here(digest):
            self._probes.probe_here(digest).addCallback(self._probed, digest)

    def _probed(self, lost: bool, digest: bytes) -> None:
        if lost:
            self._shared.publish(CHANNEL, note(LOST, digest), "telling a held stream was lost")
