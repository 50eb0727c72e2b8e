"""The shared limits store (``limits.redis_url``): reachable as requests reach it, the
take script accepted, and answering within ``limits.redis_timeout``."""

from __future__ import annotations

from typing import Any

from aigw.config.limits import LimitsConfig
from aigw.doctor.findings import Finding, fail
from aigw.doctor.redis_store import answered, probe
from aigw.gateway.redis_buckets import RedisBuckets

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
    round_trip = await probe(store.check, store.close, reactor, time_limit)
    if isinstance(round_trip, str):
        if limits.on_redis_error == "open":
            meanwhile = "every request is let through unlimited (on_redis_error: open)"
        else:
            meanwhile = "every limited request is refused with 503 (on_redis_error: closed)"
        return fail(CHECK, f"{where}: {round_trip}", f"make Redis reachable; meanwhile {meanwhile}")
    return answered(
        CHECK,
        where,
        round_trip,
        "limits",
        limits.redis_timeout,
        "takes",
        "accepts the take script",
    )
