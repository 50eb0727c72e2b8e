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
  backend, which allows one GET stream per session, serves the new process's.  The
  note also names its process (``Gateway.process``, random per process), which skips
  the echo of its own: its stream, closed again at once, may be reopened here and
  take the linger.

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

CHANNEL = b"aigw:stream-probe"
ASK = b"p"
LOST = b"l"
OPENED = b"o"
#: The longest process name an ``OPENED`` note may carry (``Gateway.process``: 12).
MAX_PROCESS = 64


async def check(shared: EndedSessions) -> None:
    """What ``aigw doctor`` asks of the store besides ``EndedSessions.check`` (which
    SUBSCRIBEs to ``CHANNEL`` once it is ``listen``ed to): PUBLISH on the channel, an
    ask for the all-zero digest, which no session id has (nobody probes).  Raises as
    the command fails."""
    await shared.command(b"PUBLISH", CHANNEL, note(ASK, bytes(32)))


def note(kind: bytes, digest: bytes, process: str = "") -> bytes:
    """A note of ``kind`` on the session whose id has SHA-256 ``digest`` (an
    ``OPENED`` one also names the ``process`` that sends it)."""
    named = kind + b" " + digest.hex().encode("ascii")
    return named + b" " + process.encode("ascii") if kind == OPENED else named


def read_note(payload: bytes) -> tuple[bytes, bytes, bytes] | None:
    """The kind (``ASK``, ``LOST``, ``OPENED``), session digest and sending process
    (``OPENED`` only, else empty) of a note; None if it is none."""
    kind, _, rest = payload.partition(b" ")
    named, _, process = rest.partition(b" ")
    digest = digest_of(named)
    if kind not in (ASK, LOST, OPENED) or digest is None:
        return None
    if (kind == OPENED) != bool(process) or len(process) > MAX_PROCESS or b" " in process:
        return None
    return kind, digest, process


class SharedStreamProbes:
    """Asks the others to probe; probes this process's streams when asked.  Tells the
    others of a session's client stream started here; ends this process's lingering
    upstream streams of a session when told."""

    def __init__(
        self, probes: StreamProbes, feeds: Feeds, shared: EndedSessions, process: str
    ) -> None:
        """Follows ``CHANNEL`` on ``shared``'s subscription (before it starts);
        ``process``: this process's name in its ``OPENED`` notes."""
        self._probes = probes
        self._feeds = feeds
        self._shared = shared
        self._process = process
        probes.ask_others = self.ask
        feeds.tell_opened = self.opened
        shared.listen(CHANNEL, self._heard)

    def ask(self, digest: bytes) -> None:
        self._shared.publish(CHANNEL, note(ASK, digest), "asking for a held stream's probe")

    def opened(self, digest: bytes) -> None:
        opened = note(OPENED, digest, self._process)
        self._shared.publish(CHANNEL, opened, "telling a stream was opened")

    def _heard(self, payload: bytes) -> None:
        read = read_note(payload)
        if read is None:
            self._shared.ignored("stream probe note", payload)
            return
        kind, digest, process = read
        if kind == LOST:
            self._probes.lost_elsewhere(digest)
        elif kind == OPENED:
            if process != self._process.encode("ascii"):
                self._feeds.opened_elsewhere(digest)
        elif self._probes.held_here(digest):
            self._probes.probe_here(digest).addCallback(self._probed, digest)

    def _probed(self, lost: bool, digest: bytes) -> None:
        if lost:
            self._shared.publish(CHANNEL, note(LOST, digest), "telling a held stream was lost")
