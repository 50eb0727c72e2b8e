"""What the checks of aigw's stores in Redis share (``limits store``, ``sessions store``):
the store's own ``check`` run within the doctor's time limit, its connections closed
whatever happens, and what went wrong said as the operator would read it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, ensureDeferred

from aigw.gateway.redis_client import RedisError
from aigw.gateway.store_failures import StoreUnavailable


async def probe(
    check: Callable[[], Coroutine[Any, Any, float]],
    close: Callable[[], Coroutine[Any, Any, None]],
    reactor: Any,
    time_limit: float,
) -> float | str:
    """The round trip ``check`` measured, in seconds; or what went wrong."""
    checking: Deferred[float] = ensureDeferred(check())
    checking.addTimeout(time_limit, reactor)
    try:
        return await checking
    except (StoreUnavailable, RedisError, TimeoutError, CancelledError, OSError) as error:
        return str(error) or f"no answer within {time_limit:g} s"
    finally:
        await close()
