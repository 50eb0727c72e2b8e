"""A deadline that moves without touching the reactor's timers on every request.

A connection that serves request after request had a timer armed and cancelled
for each (the request head's deadline, Twisted's idle timeout around every
request, the backend's answer timeout): a ``DelayedCall`` made, queued and
cancelled per request (docs/performance.md, "A leaner, faster process").  A
``Deadline`` keeps one ``DelayedCall`` at most: ``start`` records when the
deadline falls and arms a call only when none is pending, ``stop`` forgets the
deadline; when the call runs it looks at the deadline then: none, nothing
happens; later, the call is armed again for what is left; reached, ``expired``
runs.  A deadline therefore expires when it is due, as with a timer per
request, while a busy connection makes one call per period at most.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


def _nothing() -> None:
    """What a cancelled deadline runs, should its owner start it again."""


class Deadline:
    """One deadline at a time; ``expired`` runs once it passes without ``stop``."""

    def __init__(self, clock: IReactorTime, expired: Callable[[], object]) -> None:
        self._clock = clock
        self._expired = expired
        self._due: float | None = None
        #: True between ``start`` and ``stop`` (or expiry): an attribute, not a
        #: property, as it is read on every request's first bytes.
        self.running = False
        self._call: IDelayedCall | None = None
        #: When the pending call runs (what its ``getTime()`` says, without the call).
        self._at = 0.0

    def start(self, seconds: float) -> None:
        """The deadline is ``seconds`` from now (replacing any earlier one)."""
        now = self._clock.seconds()
        self._due = due = now + seconds
        self.running = True
        if self._call is None:
            self._call = self._clock.callLater(seconds, self._check)
            self._at = due
        elif self._at > due:
            self._call.reset(seconds)  # a shorter period than the pending call's
            self._at = due

    def stop(self) -> None:
        """No deadline for now; the pending call, if any, finds none and does nothing."""
        self._due = None
        self.running = False

    def cancel(self) -> None:
        """No deadline and no pending call (the connection is gone), for good: the
        owner's callback is let go too, so the owner and this deadline, which hold
        each other, are freed by reference counting, not left to the cyclic
        collector (tests/process/test_upstream_cycles.py)."""
        self._due = None
        self.running = False
        self._expired = _nothing
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _check(self) -> None:
        self._call = None
        if self._due is None:
            return
        left = self._due - self._clock.seconds()
        if left > 0:
            self._call = self._clock.callLater(left, self._check)
            self._at = self._due
            return
        self._due = None
        self.running = False
        self._expired()
