"""One request to many backends at once: the successes in order, the failures logged.

Opening a session's backends, listing, ``logging/setLevel``, client
notifications and shutdown all run one coroutine per backend in parallel; a
backend that fails is left out and logged, never failing the others.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

K = TypeVar("K")
T = TypeVar("T")


async def fan_out(
    names: Iterable[K],
    run: Callable[[K], Coroutine[Any, Any, T]],
    log: Logger,
    failed: str,
    **fields: Any,
) -> list[tuple[K, T]]:
    """``run(name)`` for every name at once; ``(name, result)`` of those that succeeded,
    in the order of ``names``.  Each failure is logged as a warning with ``failed``,
    whose fields are ``backend`` (the name), ``reason`` and ``fields``."""
    names = list(names)
    results = await DeferredList([ensureDeferred(run(name)) for name in names], consumeErrors=True)
    succeeded: list[tuple[K, T]] = []
    for name, (ok, value) in zip(names, results, strict=True):
        if ok:
            succeeded.append((name, value))
        else:
            reason = value.getErrorMessage() if isinstance(value, Failure) else str(value)
            log.warn(failed, backend=name, reason=reason, **fields)
    return succeeded
