"""``limits``: token buckets and in-flight bounds (``aigw/gateway/ratelimit.py``).

Each rule says whom it counts (``per``), optionally what (``match``, a glob on the
backend or exposed tool name), and either a rate (``rate``, ``burst``) or a bound on
requests in flight (``in_flight``).  With ``redis_url`` the buckets and the places
under in-flight bounds live in Redis, shared by every process (a place is a lease
of ``lease_ttl``, renewed while its request runs; ``rediss://``: over TLS, trusting
the system's roots or only ``redis_ca_file``); ``on_redis_error`` says what a request
gets when Redis cannot answer within ``redis_timeout``.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

import attrs

from aigw.config import nodes as cp
from aigw.config import values
from aigw.config.fields import read_as, required, section_of
from aigw.config.redis import REDIS_TIMEOUT_MAX, RedisAddress, redis_url, with_redis_trust

Per = Literal["sub", "client", "backend", "tool"]
OnRedisError = Literal["open", "closed"]

_RATE = re.compile(r"(\d+)\s*/\s*(s|m|h)")
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


@attrs.frozen
class Rate:
    """``count`` tokens every ``period`` seconds (``10/s``, ``100/m``, ``1000/h``)."""

    count: int
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.period, f"{self.period}s")
        return f"{self.count}/{unit}"


def rate(ctx: cp.Context, path: str, node: cp.Node) -> Rate | None:
    text = cp.as_str(ctx, path, node) if isinstance(node, cp.ScalarNode) else None
    match = _RATE.fullmatch(text.strip()) if text is not None else None
    if match is None or int(match.group(1)) < 1:
        ctx.report(
            path, node, f"expected a rate like 10/s, 100/m or 1000/h, got {cp.describe(node)}"
        )
        return None
    return Rate(int(match.group(1)), _PERIODS[match.group(2)])


@attrs.frozen
class LimitRule:
    """One limit: a token bucket (``rate``, ``burst``: default the rate's count) or a
    bound on requests in flight (``in_flight``), per ``per``, for what ``match`` names."""

    per: Per = attrs.field(metadata=required(cp.choice(*get_args(Per)), "sub"))
    rate: Rate | None = attrs.field(default=None, metadata=read_as(rate))
    burst: int | None = attrs.field(default=None, metadata=read_as(cp.integer(1)))
    match: str | None = attrs.field(default=None, metadata=read_as(cp.as_nonempty_str))
    in_flight: int | None = attrs.field(default=None, metadata=read_as(cp.integer(1)))

    @property
    def capacity(self) -> int:
        """The bucket's size: ``burst``, else the rate's count."""
        if self.burst is not None:
            return self.burst
        return self.rate.count if self.rate is not None else 0


_read_rule = section_of(LimitRule)


def limit_rule(ctx: cp.Context, path: str, node: cp.Node) -> LimitRule | None:
    """A rule, with what its keys say together: a rate or an in-flight bound, not both;
    ``burst`` only with a rate; ``match`` only where there is a name to match."""
    before = len(ctx.problems)
    rule = _read_rule(ctx, path, node)
    if rule is None or len(ctx.problems) > before:
        return None  # its keys' own problems are reported, not their consequences
    problem = None
    if (rule.rate is None) == (rule.in_flight is None):
        problem = "give either rate (with an optional burst) or in_flight"
    elif rule.burst is not None and rule.rate is None:
        problem = "burst goes with rate"
    elif rule.match is not None and rule.per not in ("backend", "tool"):
        problem = "match applies to per: backend or per: tool only"
    if problem is not None:
        ctx.report(path, node, problem)
        return None
    return rule


@attrs.frozen
class LimitsConfig:
    #: None: each process keeps its own buckets.
    redis_url: RedisAddress | None = attrs.field(default=None, metadata=read_as(redis_url))
    on_redis_error: OnRedisError = attrs.field(
        default="open", metadata=read_as(cp.choice(*get_args(OnRedisError)))
    )
    #: How long one Redis answer may take before ``on_redis_error`` decides.
    redis_timeout: float = attrs.field(
        default=0.05, metadata=read_as(cp.duration(at_most=REDIS_TIMEOUT_MAX))
    )
    #: PEM certificates a ``rediss://`` server's must chain to; None: the system's roots.
    redis_ca_file: str | None = attrs.field(default=None, metadata=read_as(values.ca_file))
    #: How long a place under an in-flight bound outlives the last renewal by its
    #: process (renewed every third of it while the request runs): how long the
    #: places of a process that died stay taken (``redis_buckets.py``).
    lease_ttl: float = attrs.field(default=30.0, metadata=read_as(cp.duration()))
    rules: tuple[LimitRule, ...] = attrs.field(default=(), metadata=read_as(cp.list_of(limit_rule)))


#: ``lease_ttl`` is at least this many ``redis_timeout``: a lease is renewed a third
#: into its life (``gateway/redis_buckets.py``), so a renewal that takes the whole
#: timeout still lands before the lease's end, with room to spare.
LEASE_TIMEOUTS = 2

_read_limits = section_of(LimitsConfig)


def _leases_checked(ctx: cp.Context, path: str, node: cp.Node) -> LimitsConfig | None:
    """``limits``, its ``lease_ttl`` at least ``LEASE_TIMEOUTS`` times ``redis_timeout``
    (reported, and read on, so that a ``redis_ca_file`` problem is reported with it)."""
    limits = _read_limits(ctx, path, node)
    if limits is not None and limits.lease_ttl < LEASE_TIMEOUTS * limits.redis_timeout:
        ctx.report(
            f"{path}.lease_ttl",
            cp.value_node(node, "lease_ttl"),
            f"must be at least {LEASE_TIMEOUTS} times redis_timeout "
            f"({limits.lease_ttl:g} s < {LEASE_TIMEOUTS} x {limits.redis_timeout:g} s)",
        )
    return limits


#: ``limits``, with ``redis_ca_file`` only beside a ``rediss://`` ``redis_url``.
limits_section = with_redis_trust(_leases_checked)
