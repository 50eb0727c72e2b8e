"""The store of ended sessions (``sessions.redis_url``): reachable as the processes reach
it, and taking each command they send (``gateway/ended_sessions.py``, for completion
notices ``gateway/elicitation_completions.py``, for probes of held GET streams and the
handover of lingering upstream streams ``gateway/shared_stream_probes.py``)."""

from __future__ import annotations

from typing import Any

from aigw.config.model import SessionsConfig
from aigw.doctor.findings import Finding, fail
from aigw.doctor.redis_store import answered, probe
from aigw.gateway import elicitation_completions, shared_stream_probes
from aigw.gateway.ended_sessions import EndedSessions
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import SessionCodec

CHECK = "sessions store"


async def check_sessions_store(
    sessions: SessionsConfig, reactor: Any, time_limit: float
) -> Finding | None:
    """None without ``redis_url``; else whether a DELETE would reach every process."""
    address = sessions.redis_url
    if address is None:
        return None
    where = str(address)  # without its credentials
    # The probe's end is told to no codec of consequence: a random key's, the doctor's.
    codec = SessionCodec(Sealer.random(), reactor, sessions.ttl)
    # Each call bounded by the doctor's own time limit, not sessions.redis_timeout: a
    # slow Redis is measured (and warned of, below) rather than failed half-way.
    store = EndedSessions(codec, address, reactor, time_limit, sessions.redis_ca_file)
    store.listen(elicitation_completions.CHANNEL, lambda _: None)
    store.listen(shared_stream_probes.CHANNEL, lambda _: None)

    async def check() -> float:
        """Ended sessions' commands, then completion notices' and held streams' probes'."""
        round_trip = await store.check()
        await elicitation_completions.check(store)
        await shared_stream_probes.check(store)
        return round_trip

    round_trip = await probe(check, store.close, reactor, time_limit)
    if isinstance(round_trip, str):
        return fail(
            CHECK,
            f"{where}: {round_trip}",
            "make Redis reachable and let aigw's user SUBSCRIBE, SET, PUBLISH, SCAN and PTTL "
            "(channels aigw:ended, aigw:elicitation and aigw:stream-probe); meanwhile a DELETE "
            "ends its session only in the process that served it, user_oauth completions are "
            "told to no session, a GET stream held by another process is not probed, and a "
            "GET stream reopened on another process waits for the old one's stream_linger",
        )
    return answered(
        CHECK,
        where,
        round_trip,
        "sessions",
        sessions.redis_timeout,
        "calls",
        "takes every command of ended sessions",
    )
