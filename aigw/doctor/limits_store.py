"""The shared limits store (``limits.redis_url``): reachable as requests reach it, the
take script accepted, and answering within ``limits.redis_timeout``."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, TimeoutError, ensureDeferred

from aigw.config.limits import LimitsConfig
from aigw.doctor.findings import Finding, fail, ok, warn
from aigw.gateway.ratelimit import StoreUnavailable
from aigw.gateway.redis_buckets import RedisBuckets
from aigw.gateway.redis_client import RedisError

CHECK = "limits store"


async def check_limits_store(
    limits: LimitsConfig, reactor: Any, time_limit: float
) -> Finding | None:
    """None without ``redis_url``; else whether every request's take would work."""
    address = limits.redis_url
    if address is None:
        return None
    where = str(address)  # without its credentials
    store = RedisBuckets(address, reactor, time_limit, ca_file=limits.redis_ca_file)
    checking = ensureDeferred(store.check())
    checking.addTimeout(time_limit, reactor)
    try:
        round_trip = await checking
    except (StoreUnavailable, RedisError, TimeoutError, CancelledError, OSError) as error:
        seen = str(error) or f"no answer within {time_limit:g} s"
        if limits.on_redis_error == "open":
            meanwhile = "every request is let through unlimited (on_redis_error: open)"
        else:
            meanwhile = "every limited request is refused with 503 (on_redis_error: closed)"
        return fail(CHECK, f"{where}: {seen}", f"make Redis reachable; meanwhile {meanwhile}")
    finally:
        await store.close()
    millis = round(round_trip * 1000, 1)
    if round_trip > limits.redis_timeout:
        budget = round(limits.redis_timeout * 1000, 1)
        return warn(
            CHECK,
            f"{where} answered PING in {millis} ms, over limits.redis_timeout ({budget} ms)",
            "raise limits.redis_timeout or run Redis closer: slower takes count as failures",
        )
    return ok(CHECK, f"{where} answers (PING {millis} ms) and accepts the take script")
