"""One fetch at a time per key: whoever asks while it runs waits on the same one."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

K = TypeVar("K")
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Runs at most one ``start()`` per key; every caller gets its own Deferred.

    Each waiter is a Deferred of its own, so a caller that gives up (its request
    cancelled) cancels only its wait, never the fetch the others wait on.
    """

    def __init__(self) -> None:
        self._waiters: dict[K, list[Deferred[V]]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._waiters

    def run(self, key: K, start: Callable[[], Coroutine[Any, Any, V]]) -> Deferred[V]:
        waiter: Deferred[V] = Deferred()
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        self._waiters[key] = [waiter]
        Deferred.fromCoroutine(start()).addBoth(self._settle, key)
        return waiter

    def _settle(self, result: V | Failure, key: K) -> None:
        for waiter in self._waiters.pop(key, []):
            if waiter.called:  # cancelled by its caller
                continue
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
