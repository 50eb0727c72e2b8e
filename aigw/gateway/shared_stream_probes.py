"""A session's held GET stream probed in whichever process holds it (``sessions.redis_url``).

With ``limits.redis_url`` a session's one GET stream is a lease in Redis (``limits.py``),
so the process a reconnecting client's GET lands on may not be the one holding the
old stream, and only that one can write to it (``stream_probes.py``).  Two notes on
the channel ``aigw:stream-probe`` (the subscription of ``ended_sessions.py``, one
connection per process), each naming the session by the hex SHA-256 of its id (never
the id, a credential):

* ``p <hex>``: a GET of that session was refused here; every process holding a stream
  of it probes that stream (one probe per session in flight in a process, however many
  ask);
* ``l <hex>``: a probe found that stream lost, its place given back; the GETs awaiting
  it take the place again.

A probe writes an SSE comment and nothing else, so a note needs no more than the
session's digest.  The channel is written only by aigw processes; still, a malformed
note is ignored and counted with the store's failures
(``aigw_session_store_failures_total``).  When Redis fails the refused GET hears
nothing and is refused (409) after ``PROBE_WAIT + REPLY_MARGIN``, as without the
probe.
"""

from __future__ import annotations

from aigw.gateway.ended_sessions import EndedSessions, digest_of
from aigw.gateway.stream_probes import StreamProbes

CHANNEL = b"aigw:stream-probe"
ASK = b"p"
LOST = b"l"


async def check(shared: EndedSessions) -> None:
    """What ``aigw doctor`` asks of the store besides ``EndedSessions.check`` (which
    SUBSCRIBEs to ``CHANNEL`` once it is ``listen``ed to): PUBLISH on the channel, an
    ask for the all-zero digest, which no session id has (nobody probes).  Raises as
    the command fails."""
    await shared.command(b"PUBLISH", CHANNEL, note(ASK, bytes(32)))


def note(kind: bytes, digest: bytes) -> bytes:
    return kind + b" " + digest.hex().encode("ascii")


def read_note(payload: bytes) -> tuple[bytes, bytes] | None:
    """The kind (``ASK``, ``LOST``) and session digest of a note; None if it is none."""
    kind, _, named = payload.partition(b" ")
    digest = digest_of(named)
    if kind not in (ASK, LOST) or digest is None:
        return None
    return kind, digest


class SharedStreamProbes:
    """Asks the others to probe; probes this process's streams when asked."""

    def __init__(self, probes: StreamProbes, shared: EndedSessions) -> None:
        """Follows ``CHANNEL`` on ``shared``'s subscription (before it starts)."""
        self._probes = probes
        self._shared = shared
        probes.ask_others = self.ask
        shared.listen(CHANNEL, self._heard)

    def ask(self, digest: bytes) -> None:
        self._shared.publish(CHANNEL, note(ASK, digest), "asking for a held stream's probe")

    def _heard(self, payload: bytes) -> None:
        read = read_note(payload)
        if read is None:
            self._shared.ignored("stream probe note", payload)
            return
        kind, digest = read
        if kind == LOST:
            self._probes.lost_elsewhere(digest)
        elif self._probes.held_here(digest):
            self._probes.probe_here(digest).addCallback(self._probed, digest)

    def _probed(self, lost: bool, digest: bytes) -> None:
        if lost:
            self._shared.publish(CHANNEL, note(LOST, digest), "telling a held stream was lost")
