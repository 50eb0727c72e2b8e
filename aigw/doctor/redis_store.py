"""What the checks of aigw's stores in Redis share (``limits store``, ``sessions store``):
the store's own ``check`` run within the doctor's time limit, its connections closed
whatever happens, what went wrong said as the operator would read it, and a store
that answered judged against its section's ``redis_timeout``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, ensureDeferred

from aigw.doctor.findings import Finding, ok, warn
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


def answered(
    check: str,
    where: str,
    round_trip: float,
    section: str,
    timeout: float,
    slower: str,
    ok_text: str,
) -> Finding:
    """A store that answered in ``round_trip`` seconds: warned of when that is over
    ``<section>.redis_timeout`` (its ``slower`` calls would count as failures), else ok,
    saying ``ok_text`` of it."""
    millis = round(round_trip * 1000, 1)
    if round_trip > timeout:
        budget = round(timeout * 1000, 1)
        return warn(
            check,
            f"{where} answered PING in {millis} ms, over {section}.redis_timeout ({budget} ms)",
            f"raise {section}.redis_timeout or run Redis closer: slower {slower} count as failures",
        )
    return ok(check, f"{where} answers (PING {millis} ms) and {ok_text}")
