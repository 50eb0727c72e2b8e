"""Rate and concurrency limits (``limits``): token buckets and bounds on requests in flight.

A request is counted twice: on arrival (``enter``: the ``per: sub`` and ``per: client``
rules, for every MCP request routed by the gateway) and once routed (``route``: the
``per: backend`` and ``per: tool`` rules whose ``match`` glob names its backend or
exposed name; calls only).  Each phase takes a token from every bucket that applies
or from none, so a refused request costs nothing.  A refusal is ``RateLimited``: HTTP
429 (RFC 6585 §4) with ``Retry-After`` (RFC 9110 §10.2.3) in seconds until a token
is there, and a JSON-RPC error naming the rule (``web/respond.py``).

The buckets live in the process (``LocalBuckets``) or, with ``limits.redis_url``, in
Redis (``redis_buckets.py``), shared by every process.  Bounds on requests in flight
are counted in each process: a request in flight holds this process's resources.
Identities are hashed before they become keys: no ``sub`` or client id in clear.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any, Protocol

import attrs
from twisted.logger import Logger

from aigw.config.limits import LimitRule, LimitsConfig
from aigw.lru import LRU
from aigw.principal import Principal
from aigw.protocol import jsonrpc

#: Buckets one process remembers; a forgotten bucket was full or nearly so.
MAX_LOCAL_BUCKETS = 100_000
#: Retry-After when waiting for a request in flight to end, or for the limiter.
RETRY_UNKNOWN_SECONDS = 1
#: At most one log line this often about the shared store failing.
STORE_LOG_INTERVAL = 10.0


class RateLimited(Exception):
    """A request refused by a limit (429) or by an unreachable limiter (503)."""

    def __init__(self, status: int, limit: str, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.limit = limit
        self.retry_after = retry_after
        self.message = message
        self.code = jsonrpc.RATE_LIMITED
        #: The client's id of the refused request, set by the gateway.
        self.request_id: Any = None


class StoreUnavailable(Exception):
    """The shared bucket store did not answer in time, or failed."""


@attrs.frozen
class Bucket:
    """One bucket a request takes a token from: its key, refill rate and size."""

    key: str
    rate: float
    capacity: int


@attrs.frozen
class Taken:
    """What a store answered: ``refused`` is the index of the first empty bucket (None:
    every bucket gave a token), ``wait`` the seconds until it holds one."""

    refused: int | None
    wait: float = 0.0


class BucketStore(Protocol):
    async def take(self, buckets: Sequence[Bucket]) -> Taken:
        """One token from every bucket, or from none."""

    async def close(self) -> None: ...


class LocalBuckets:
    """Token buckets in this process, refilled on the reactor's clock."""

    def __init__(self, clock: Any, max_entries: int = MAX_LOCAL_BUCKETS) -> None:
        self.clock = clock
        self._buckets: LRU[str, tuple[float, float]] = LRU(max_entries)

    async def take(self, buckets: Sequence[Bucket]) -> Taken:
        return self.take_now(buckets)

    def take_now(self, buckets: Sequence[Bucket]) -> Taken:
        now = self.clock.seconds()
        levels = []
        for index, bucket in enumerate(buckets):
            state = self._buckets.get(bucket.key)
            tokens = float(bucket.capacity)
            if state is not None:
                level, then = state
                tokens = min(tokens, level + max(0.0, now - then) * bucket.rate)
            if tokens < 1.0:
                return Taken(index, (1.0 - tokens) / bucket.rate)
            levels.append(tokens)
        for bucket, tokens in zip(buckets, levels, strict=True):
            self._buckets.put(bucket.key, (tokens - 1.0, now))
        return Taken(None)

    async def close(self) -> None:
        return None


class Permit:
    """The in-flight slots one request holds; ``release`` is idempotent."""

    __slots__ = ("_counts", "_keys")

    def __init__(self, counts: Counter[str] | None = None, keys: Sequence[str] = ()) -> None:
        self._counts = counts
        self._keys = list(keys)

    def release(self) -> None:
        counts = self._counts
        if counts is None:
            return
        for key in self._keys:
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]
        self._keys = []


NO_PERMIT = Permit()


def _identity(rule: LimitRule, principal: Principal, backend: str, tool: str | None) -> str:
    if rule.per == "sub":
        return f"{principal.issuer}\n{principal.subject}"
    if rule.per == "client":
        return principal.client_id or ""
    if rule.per == "backend":
        return backend
    return tool or ""


def _key(index: int, rule: LimitRule, identity: str) -> str:
    """``aigw:rl:<rule>:<per>:<hash>``: SHA-256 of the rule and the identity, truncated
    to 128 bits; a reload that changes a rule starts its buckets afresh."""
    text = f"{rule!r}\n{identity}".encode("utf-8", "surrogatepass")
    return f"aigw:rl:{index}:{rule.per}:{hashlib.sha256(text).hexdigest()[:32]}"


class Limiter:
    """Applies ``limits.rules`` to requests; see the module docstring."""

    log = Logger()

    def __init__(self, config: LimitsConfig, clock: Any, store: BucketStore | None = None) -> None:
        self.clock = clock
        self.config = config
        self.local = LocalBuckets(clock)
        self.store: BucketStore = store or self.local
        self.in_flight: Counter[str] = Counter()
        #: Times the shared store failed or timed out (each logged, at most once a while).
        self.store_errors = 0
        self._logged_errors = 0
        self._last_log = -math.inf
        self._rules: list[tuple[int, LimitRule]] = []
        self.follow(config)

    def follow(self, config: LimitsConfig) -> None:
        """The rules of a (re)loaded config; buckets of unchanged rules keep their level."""
        self.config = config
        self._rules = list(enumerate(config.rules))

    async def enter(self, principal: Principal) -> Permit:
        """The ``sub`` and ``client`` rules, on a request's arrival."""
        return await self._apply(principal, "", None, arrival=True)

    async def route(self, principal: Principal, backend: str, exposed: str | None) -> Permit:
        """The ``backend`` and ``tool`` rules whose ``match`` names this route."""
        return await self._apply(principal, backend, exposed, arrival=False)

    async def _apply(
        self, principal: Principal, backend: str, tool: str | None, arrival: bool
    ) -> Permit:
        if not self._rules:
            return NO_PERMIT
        buckets: list[tuple[int, LimitRule, Bucket]] = []
        flights: list[tuple[int, str, int]] = []
        for index, rule in self._rules:
            if (rule.per in ("sub", "client")) != arrival:
                continue
            if rule.per in ("backend", "tool"):
                name = backend if rule.per == "backend" else tool
                if not name or (rule.match is not None and not fnmatchcase(name, rule.match)):
                    continue
            key = _key(index, rule, _identity(rule, principal, backend, tool))
            if rule.rate is not None:
                buckets.append((index, rule, Bucket(key, rule.rate.per_second, rule.capacity)))
            elif rule.in_flight is not None:
                flights.append((index, key, rule.in_flight))
        for index, key, bound in flights:
            if self.in_flight[key] >= bound:
                rule = self.config.rules[index]
                raise RateLimited(
                    429,
                    f"{rule.per}:{index}",
                    RETRY_UNKNOWN_SECONDS,
                    f"too many requests in flight (limits.rules[{index}]: at most {bound} "
                    f"per {rule.per})",
                )
        if buckets:
            await self._take(buckets)
        for _, key, _ in flights:
            self.in_flight[key] += 1
        return Permit(self.in_flight, [key for _, key, _ in flights]) if flights else NO_PERMIT

    async def _take(self, buckets: list[tuple[int, LimitRule, Bucket]]) -> None:
        try:
            taken = await self.store.take([bucket for _, _, bucket in buckets])
        except StoreUnavailable as error:
            self._store_failed(error)
            if self.config.on_redis_error == "closed":
                raise RateLimited(
                    503,
                    "limits.redis_url",
                    RETRY_UNKNOWN_SECONDS,
                    "the rate limiter is unavailable; retry later",
                ) from None
            return
        if taken.refused is not None:
            index, rule, _ = buckets[taken.refused]
            raise RateLimited(
                429,
                f"{rule.per}:{index}",
                max(1, math.ceil(taken.wait - 1e-6)),  # not 2 s for 1.0000001 s
                f"rate limit reached (limits.rules[{index}]: {rule.rate} per {rule.per})",
            )

    def _store_failed(self, error: StoreUnavailable) -> None:
        """Counted always; logged at most once per ``STORE_LOG_INTERVAL``."""
        self.store_errors += 1
        now = self.clock.seconds()
        if now - self._last_log < STORE_LOG_INTERVAL:
            return
        self.log.warn(
            "rate limiter store unavailable ({count} failures since the last report, "
            "{total} in all): {error}; requests are {verdict}",
            count=self.store_errors - self._logged_errors,
            total=self.store_errors,
            error=str(error),
            verdict="allowed" if self.config.on_redis_error == "open" else "refused",
        )
        self._last_log = now
        self._logged_errors = self.store_errors

    async def close(self) -> None:
        await self.store.close()


def build_limiter(config: LimitsConfig, clock: Any) -> Limiter:
    """The limiter of a config: buckets in Redis when ``redis_url`` is set.  Its client
    (``redis_buckets.py``) is imported only then (docs/performance.md)."""
    store = None
    if config.redis_url is not None:
        from aigw.gateway.redis_buckets import RedisBuckets

        store = RedisBuckets(
            config.redis_url, clock, config.redis_timeout, ca_file=config.redis_ca_file
        )
    return Limiter(config, clock, store)
