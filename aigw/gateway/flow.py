"""Flow control from a client back to the backends that feed it.

A client that reads its SSE reply slowly, or not at all, must not make aigw buffer
what the backend keeps sending.  Twisted says when a client's socket is full: the
TCP transport pauses its producer once its write buffer holds more than
``bufferSize`` (64 KiB: the high-water mark) and resumes it when the buffer is
empty again (the low-water mark); ``HTTPChannel`` passes both on to the producer
the current ``Request`` registered.  A ``Valve`` is that producer: it pauses every
upstream body reader feeding the reply (``BodyReader.pause``, which stops reading
the backend's socket), so the backend's own TCP window does the waiting and aigw
holds at most one read of each reader at a time.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


class Pausable(Protocol):
    """What a valve pauses: an upstream body reader, a shared upstream feed."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...


@implementer(IPushProducer)
class Valve:
    """The producer of one client's reply: pauses and resumes what feeds it."""

    __slots__ = ("_sources", "paused")

    def __init__(self) -> None:
        self._sources: list[Pausable] = []
        self.paused = False

    def add(self, source: Pausable) -> None:
        """A reader begins feeding the reply (paused at once if the client is behind)."""
        self._sources.append(source)
        if self.paused:
            source.pause()

    def remove(self, source: Pausable) -> None:
        if source in self._sources:
            self._sources.remove(source)
            if self.paused:
                source.resume()

    def pauseProducing(self) -> None:
        if self.paused:
            return
        self.paused = True
        for source in list(self._sources):
            source.pause()

    def resumeProducing(self) -> None:
        if not self.paused:
            return
        self.paused = False
        for source in list(self._sources):
            source.resume()

    def stopProducing(self) -> None:
        """The client's connection is going: ending the request is the reply's own
        business (its ``notifyFinish`` cancels what is in flight)."""
        self.resumeProducing()
