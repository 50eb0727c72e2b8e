"""The config in force, behind a holder that can be swapped atomically (live reload).

A request reads ``holder.current`` once when it starts and uses that snapshot to
its end, so a reload never shows one request half of each config.  Swapping is a
single attribute assignment on the reactor thread: atomic for every reader.
"""

from __future__ import annotations

from collections.abc import Callable

from aigw.config.model import Config

Subscriber = Callable[[Config, Config], None]


class ConfigHolder:
    """Holds the current ``Config``; tells subscribers (old, new) after each swap."""

    def __init__(self, config: Config) -> None:
        self._current = config
        self._subscribers: list[Subscriber] = []

    @property
    def current(self) -> Config:
        return self._current

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def swap(self, config: Config) -> Config:
        """Put ``config`` in force; returns the one it replaced."""
        old, self._current = self._current, config
        for subscriber in self._subscribers:
            subscriber(old, config)
        return old
