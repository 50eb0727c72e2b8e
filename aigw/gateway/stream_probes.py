"""Is the session's GET stream still there?  Asked before a second one is refused.

A session holds one GET stream (``limits.py``; 2025-11-25 basic/transports lets a
client reconnect with a new GET, with ``Last-Event-ID`` to resume).  A client whose
stream broke opens a new one at once, but its old stream may still look open here:
behind a proxy that passes a client's close on only when a write to the client fails
(HAProxy without ``option abortonclose``, others alike) or over a connection whose
client side was closed while aigw reads nothing (a half-closed one), aigw learns of
the loss only at a write, the next keep-alive comment up to ``KEEPALIVE_SECONDS``
later (two of them behind HAProxy).  Refused with 409 until then, the client would
fail its reconnect.  (A peer that vanished without a trace answers no write; the
probe cannot tell it from a live one, and its place is held until TCP gives up.)

So before refusing, the held stream is probed: an SSE comment written to it (clients
ignore comments) every ``PROBE_INTERVAL`` for at most ``PROBE_WAIT``; a write is what
makes the proxy or the kernel notice a closed peer.  If the stream is lost meanwhile,
its place is free and the new GET is served; if it lives, the new one is refused as
before, so of two live streams the first keeps its place.  A stream whose client is
behind (backpressure: its valve paused the feeds) is not written to: the comment
would only queue, and the stream counts as alive.

One probe per session is in flight in a process, whoever asks (this process's GETs,
another process's note); at most ``MAX_PROBES`` sessions are probed or awaited at
once, beyond that a GET is refused at once.  Across processes (the session's place is
a lease in Redis, ``limits.redis_url``), the holder may be elsewhere: ``ask_others``
(``shared_stream_probes.py``, with ``sessions.redis_url``) asks every process to probe
its streams of the session, and the refused GET waits at most ``PROBE_WAIT +
REPLY_MARGIN`` to hear that it was lost.  Without ``sessions.redis_url`` only this
process's streams are probed.

Each ending is counted in ``StreamProbes.outcomes`` (``aigw_stream_probes_total``):
where the stream was probed or awaited, and how it ended (``OUTCOMES``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from aigw.gateway.streams import SessionStream
from aigw.protocol.sse import format_comment

#: Seconds a held stream is probed before it counts as alive.  Long enough for the
#: few writes a proxy needs to notice its client is gone (HAProxy 2.6: the second
#: write after the close), short enough that a client whose second GET is refused
#: waits about a second, not a keep-alive period.
PROBE_WAIT = 1.0
#: Seconds between the probe's comments (and its looks at whether the stream is lost).
PROBE_INTERVAL = 0.2
#: Seconds a GET whose holder is in another process waits beyond ``PROBE_WAIT`` for
#: that process's word: two Redis hops on a loaded host.
REPLY_MARGIN = 0.5
#: Times a GET retakes the place its holder lost, ``RETAKE_INTERVAL`` apart: a holder
#: elsewhere gives its lease back (``limits.redis_url``) on another connection than
#: its word (``sessions.redis_url``), so the word may come first.  (Once when the
#: holder lives: it may have lost its stream just before the probe; and once, after
#: ``RETAKE_INTERVAL``, before asking the others: a proxy that passed the close on at
#: once leaves the new GET racing the old stream's lease back.)
RETAKES = 3
RETAKE_INTERVAL = 0.1
#: Sessions probed or awaited at once in a process, at most (each holds a timer and
#: the refused GETs waiting on it).
MAX_PROBES = 1024
#: The probe's comment.
PROBE = format_comment("aigw probe")
#: How a probe ends, by where the stream is: ``here`` (a probe of this process's
#: streams, for its GET or another process's ask): ``lost``, ``alive`` (through
#: ``PROBE_WAIT``, or behind), ``failed`` (a write raised), ``full`` (``MAX_PROBES``
#: in flight: refused at once); ``elsewhere`` (a GET awaiting another process's word):
#: ``lost`` (its word came), ``unanswered`` (none within ``PROBE_WAIT +
#: REPLY_MARGIN``: the holder lives, or Redis failed), ``full``.  Once per probe or
#: await, not per GET sharing it; a ``full`` once per GET refused.
OUTCOMES: Final = (
    *(("here", outcome) for outcome in ("lost", "alive", "failed", "full")),
    *(("elsewhere", outcome) for outcome in ("lost", "unanswered", "full")),
)


class _Probe:
    """One session's streams in this process, probed until lost or ``PROBE_WAIT``."""

    def __init__(
        self, streams: list[SessionStream], clock: Any, done: Callable[[str], None]
    ) -> None:
        self.waiters: list[Deferred[bool]] = []
        self._streams = streams
        self._done = done
        self._ticks = 0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock

    def start(self) -> None:
        self._loop.start(PROBE_INTERVAL, now=True).addErrback(self._failed)

    def _failed(self, failure: Failure) -> None:
        """A write raised (a stream ending under it): its waiters are answered all the
        same, as for a live stream, and never left waiting."""
        StreamProbes.log.failure("probing a held GET stream", failure)
        self._done("failed")

    def _tick(self) -> None:
        alive = [stream for stream in self._streams if not stream.closed]
        if not alive or self._ticks * PROBE_INTERVAL >= PROBE_WAIT:
            self._loop.stop()
            self._done("alive" if alive else "lost")
            return
        self._ticks += 1
        for stream in alive:
            if not stream.behind:
                stream.write(PROBE)


class StreamProbes:
    """Probes this process's GET streams of a session (``probe_here``); waits for the
    word of other processes' (``await_others``, fed by ``lost_elsewhere``).

    ``streams``: this process's open GET streams of the session whose id has that
    SHA-256 (``Gateway.streams_of``)."""

    log = Logger()

    def __init__(self, streams: Callable[[bytes], list[SessionStream]], clock: Any) -> None:
        self._streams = streams
        self._clock = clock
        #: Asks every process to probe its streams of a session (None: no Redis).
        self.ask_others: Callable[[bytes], None] | None = None
        self._probes: dict[bytes, _Probe] = {}
        self._awaiting: dict[bytes, tuple[list[Deferred[bool]], IDelayedCall]] = {}
        #: Probes and awaits ended, by (where, outcome) of ``OUTCOMES``.
        self.outcomes: dict[tuple[str, ...], int] = dict.fromkeys(OUTCOMES, 0)

    def held_here(self, digest: bytes) -> bool:
        return bool(self._streams(digest))

    def probe_here(self, digest: bytes) -> Deferred[bool]:
        """True once every stream of the session held here is lost (at once if none
        is), False if one lives through ``PROBE_WAIT`` or too many are probed."""
        waiting: Deferred[bool] = Deferred()
        probe = self._probes.get(digest)
        if probe is None:
            streams = self._streams(digest)
            if not streams:
                waiting.callback(True)
                return waiting
            if len(self._probes) >= MAX_PROBES:
                self.outcomes["here", "full"] += 1
                waiting.callback(False)
                return waiting
            probe = self._probes[digest] = _Probe(
                streams, self._clock, lambda outcome: self._probed(digest, outcome)
            )
            probe.waiters.append(waiting)
            probe.start()
            return waiting
        probe.waiters.append(waiting)
        return waiting

    def _probed(self, digest: bytes, outcome: str) -> None:
        probe = self._probes.pop(digest)
        self.outcomes["here", outcome] += 1
        self.log.debug("probed a held GET stream: {outcome}", outcome=outcome)
        lost = outcome == "lost"
        for waiter in probe.waiters:
            waiter.callback(lost)

    def await_others(self, digest: bytes) -> Deferred[bool]:
        """True once another process says it lost its stream of the session; False
        after ``PROBE_WAIT + REPLY_MARGIN`` (or at once without Redis, or when too many
        are awaited).  The others are asked once per session while awaited."""
        waiting: Deferred[bool] = Deferred()
        if self.ask_others is None:
            waiting.callback(False)
            return waiting
        awaited = self._awaiting.get(digest)
        if awaited is None:
            if len(self._awaiting) >= MAX_PROBES:
                self.outcomes["elsewhere", "full"] += 1
                waiting.callback(False)
                return waiting
            timer = self._clock.callLater(PROBE_WAIT + REPLY_MARGIN, self._answered, digest, False)
            awaited = self._awaiting[digest] = ([], timer)
            self.ask_others(digest)
        awaited[0].append(waiting)
        return waiting

    def lost_elsewhere(self, digest: bytes) -> None:
        """Another process lost its stream of the session: the GETs awaiting it retry."""
        if digest in self._awaiting:
            self._answered(digest, True)

    def _answered(self, digest: bytes, lost: bool) -> None:
        waiters, timer = self._awaiting.pop(digest)
        self.outcomes["elsewhere", "lost" if lost else "unanswered"] += 1
        if timer.active():
            timer.cancel()
        for waiter in waiters:
            waiter.callback(lost)
