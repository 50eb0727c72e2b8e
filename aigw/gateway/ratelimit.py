"""Rate and concurrency limits (``limits``): token buckets and bounds on requests in flight.

A request is counted twice: on arrival (``enter``: the ``per: sub`` and ``per: client``
rules, for every MCP request routed by the gateway) and once routed (``route``: the
``per: backend`` and ``per: tool`` rules whose ``match`` glob names its backend or
exposed name; calls only).  Each phase takes a token from every bucket that applies
or from none, so a refused request costs nothing.  A refusal is ``RateLimited``: HTTP
429 (RFC 6585 §4) with ``Retry-After`` (RFC 9110 §10.2.3) in seconds until a token
is there, and a JSON-RPC error naming the rule (``web/respond.py``).

A bound on requests in flight (``in_flight``) is a place a request holds under the
bound from its arrival (or routing) to its answer, a ``Permit`` given back once.  The
buckets and the places live in the process (``LocalBuckets``) or, with
``limits.redis_url``, in Redis (``redis_buckets.py``), shared by every process: there a
place is a lease that expires unless its process keeps renewing it, so a process that
dies mid-call frees its places within ``limits.lease_ttl``.  One request costs the
store one call when a rule applies to it and none otherwise; a release costs one only
when the request held a place.  Identities are hashed before they become keys: no
``sub`` or client id in clear.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Coroutine, Sequence
from fnmatch import fnmatchcase
from typing import Any, Protocol

import attrs
from twisted.logger import Logger

from aigw.config.limits import LimitRule, LimitsConfig
from aigw.gateway.refused import Refused
from aigw.gateway.store_failures import StoreFailures, StoreUnavailable
from aigw.lru import LRU
from aigw.principal import Principal
from aigw.protocol import jsonrpc

#: Buckets one process remembers; a forgotten bucket was full or nearly so.
MAX_LOCAL_BUCKETS = 100_000
#: Retry-After when waiting for a request in flight to end, or for the limiter.
RETRY_UNKNOWN_SECONDS = 1
#: The warning about the shared store failing (``StoreFailures``).
STORE_FAILED_LINE = (
    "rate limiter store unavailable ({count} failures since the last report, "
    "{total} in all): {error}; {outcome}"
)


class RateLimited(Refused):
    """A request refused by a limit (429) or by an unreachable limiter (503)."""

    def __init__(self, status: int, limit: str, retry_after: int, message: str) -> None:
        data = {"limit": limit, "retry_after": retry_after}
        super().__init__(status, jsonrpc.RATE_LIMITED, limit, retry_after, message, data)
        self.limit = limit


class Permit:
    """The places under in-flight bounds one request holds (none: ``NO_PERMIT``).
    ``release`` gives them back, once however often it is called, and never raises:
    it runs in the request path's ``finally``."""

    __slots__ = ()

    def release(self) -> None:
        return None


NO_PERMIT = Permit()


@attrs.frozen
class Bucket:
    """One bucket a request takes a token from: its key, refill rate and size."""

    key: str
    rate: float
    capacity: int


@attrs.frozen
class Slot:
    """One in-flight bound a request takes a place under: its key and the bound."""

    key: str
    bound: int


@attrs.frozen
class Taken:
    """What a store answered: ``refused`` is the index of what refused, counting the
    buckets then the slots (None: nothing did), ``wait`` the seconds until a refusing
    bucket holds a token, ``permit`` the places taken."""

    refused: int | None
    wait: float = 0.0
    permit: Permit = NO_PERMIT


class BucketStore(Protocol):
    async def take(self, buckets: Sequence[Bucket], slots: Sequence[Slot] = ()) -> Taken:
        """One token from every bucket and a place under every slot, or nothing."""

    def follow(self, config: LimitsConfig) -> None:
        """The settings of a reloaded config with the same store."""

    async def close(self) -> None: ...


class LocalPermit(Permit):
    """Places counted in this process (``LocalBuckets.in_flight``)."""

    __slots__ = ("_counts", "_keys")

    def __init__(self, counts: Counter[str], keys: Sequence[str]) -> None:
        self._counts = counts
        self._keys = list(keys)

    def release(self) -> None:
        counts = self._counts
        for key in self._keys:
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]
        self._keys = []


class LocalBuckets:
    """Token buckets in this process, refilled on the reactor's clock, and the counts
    of requests in flight (only keys with requests in flight are kept)."""

    def __init__(self, clock: Any, max_entries: int = MAX_LOCAL_BUCKETS) -> None:
        self.clock = clock
        self._buckets: LRU[str, tuple[float, float]] = LRU(max_entries)
        self.in_flight: Counter[str] = Counter()

    async def take(self, buckets: Sequence[Bucket], slots: Sequence[Slot] = ()) -> Taken:
        return self.take_now(buckets, slots)

    def take_now(self, buckets: Sequence[Bucket], slots: Sequence[Slot] = ()) -> Taken:
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
        for index, slot in enumerate(slots, len(buckets)):
            if self.in_flight[slot.key] >= slot.bound:
                return Taken(index)
        for bucket, tokens in zip(buckets, levels, strict=True):
            self._buckets.put(bucket.key, (tokens - 1.0, now))
        if not slots:
            return Taken(None)
        for slot in slots:
            self.in_flight[slot.key] += 1
        return Taken(None, permit=LocalPermit(self.in_flight, [slot.key for slot in slots]))

    def follow(self, config: LimitsConfig) -> None:
        return None

    async def close(self) -> None:
        return None


def _identity(rule: LimitRule, principal: Principal, backend: str, tool: str | None) -> str:
    if rule.per == "sub":
        return f"{principal.issuer}\n{principal.subject}"
    if rule.per == "client":
        return principal.client_id or ""
    if rule.per == "backend":
        return backend
    return tool or ""


def hashed_key(prefix: str, text: str) -> str:
    """``<prefix>:<hash>``: SHA-256 of ``text``, truncated to 128 bits, so that no
    identity is kept in clear in a shared store."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}:{digest[:32]}"


def _key(index: int, rule: LimitRule, identity: str) -> str:
    """``aigw:rl:<rule>:<per>:<hash>``: the hash of the rule and the identity; a reload
    that changes a rule starts its buckets afresh."""
    return hashed_key(f"aigw:rl:{index}:{rule.per}", f"{rule!r}\n{identity}")


class Limiter:
    """Applies ``limits.rules`` to requests; see the module docstring."""

    log = Logger()

    def __init__(
        self,
        config: LimitsConfig,
        clock: Any,
        store: BucketStore | None = None,
        store_failures: StoreFailures | None = None,
    ) -> None:
        """``store_failures``: those of the limiter this one replaces (a reload), so
        that the count goes on from where it was."""
        self.clock = clock
        self.config = config
        self.local = LocalBuckets(clock)
        self.store: BucketStore = store or self.local
        #: Times the shared store failed or timed out: takes (``failed_take``), and
        #: the releases and renewals the store reports itself.  Its logger's source is
        #: the class: carried across reloads, it keeps no replaced limiter alive.
        self.store_failures = store_failures or StoreFailures(
            clock, type(self).log, STORE_FAILED_LINE
        )
        self._rules: list[tuple[int, LimitRule]] = []
        self.follow(config)

    def follow(self, config: LimitsConfig) -> None:
        """The rules of a (re)loaded config; buckets of unchanged rules keep their level."""
        self.config = config
        self._rules = list(enumerate(config.rules))
        self.store.follow(config)

    @property
    def shared(self) -> BucketStore | None:
        """The store every process shares (``limits.redis_url``), None without one."""
        return None if self.store is self.local else self.store

    # enter and route hand back _apply's coroutine rather than awaiting it in one of
    # their own: two coroutines fewer per proxied call.
    def enter(self, principal: Principal) -> Coroutine[Any, Any, Permit]:
        """The ``sub`` and ``client`` rules, on a request's arrival."""
        return self._apply(principal, "", None, arrival=True)

    def route(
        self, principal: Principal, backend: str, exposed: str | None
    ) -> Coroutine[Any, Any, Permit]:
        """The ``backend`` and ``tool`` rules whose ``match`` names this route."""
        return self._apply(principal, backend, exposed, arrival=False)

    async def _apply(
        self, principal: Principal, backend: str, tool: str | None, arrival: bool
    ) -> Permit:
        if not self._rules:
            return NO_PERMIT
        buckets: list[Bucket] = []
        slots: list[Slot] = []
        rated: list[int] = []
        bounded: list[int] = []
        for index, rule in self._rules:
            if (rule.per in ("sub", "client")) != arrival:
                continue
            if rule.per in ("backend", "tool"):
                name = backend if rule.per == "backend" else tool
                if not name or (rule.match is not None and not fnmatchcase(name, rule.match)):
                    continue
            key = _key(index, rule, _identity(rule, principal, backend, tool))
            if rule.rate is not None:
                buckets.append(Bucket(key, rule.rate.per_second, rule.capacity))
                rated.append(index)
            elif rule.in_flight is not None:
                slots.append(Slot(key, rule.in_flight))
                bounded.append(index)
        if not buckets and not slots:
            return NO_PERMIT  # no rule applies: the store is not asked
        try:
            taken = await self.store.take(buckets, slots)
        except StoreUnavailable as error:
            if self.failed_take(error):
                raise RateLimited(
                    503,
                    "limits.redis_url",
                    RETRY_UNKNOWN_SECONDS,
                    "the rate limiter is unavailable; retry later",
                ) from None
            return NO_PERMIT
        if taken.refused is None:
            return taken.permit
        if taken.refused < len(buckets):
            index = rated[taken.refused]
            rule = self.config.rules[index]
            raise RateLimited(
                429,
                f"{rule.per}:{index}",
                max(1, math.ceil(taken.wait - 1e-6)),  # not 2 s for 1.0000001 s
                f"rate limit reached (limits.rules[{index}]: {rule.rate} per {rule.per})",
            )
        index = bounded[taken.refused - len(buckets)]
        rule = self.config.rules[index]
        raise RateLimited(
            429,
            f"{rule.per}:{index}",
            RETRY_UNKNOWN_SECONDS,
            f"too many requests in flight (limits.rules[{index}]: at most {rule.in_flight} "
            f"per {rule.per})",
        )

    def failed_take(self, error: StoreUnavailable) -> bool:
        """A take the shared store did not answer, counted and logged: whether the
        request is refused (``on_redis_error: closed``) rather than let through."""
        closed = self.config.on_redis_error == "closed"
        outcome = "requests are refused" if closed else "requests are allowed"
        self.store_failures.report(error, outcome=outcome)
        return closed

    async def close(self) -> None:
        await self.store.close()


def build_limiter(
    config: LimitsConfig, clock: Any, store_failures: StoreFailures | None = None
) -> Limiter:
    """The limiter of a config: buckets and places in Redis when ``redis_url`` is set.
    Its client (``redis_buckets.py``) is imported only then (docs/performance.md).
    ``store_failures``: those of the limiter a reload replaces."""
    limiter = Limiter(config, clock, store_failures=store_failures)
    if config.redis_url is not None:
        from aigw.gateway.redis_buckets import RedisBuckets

        limiter.store = RedisBuckets(
            config.redis_url,
            clock,
            config.redis_timeout,
            config.lease_ttl,
            ca_file=config.redis_ca_file,
            failures=limiter.store_failures,
        )
    return limiter
