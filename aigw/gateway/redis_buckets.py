"""Token buckets and in-flight bounds in Redis, shared by every aigw process
(``limits.redis_url``).

Each request's buckets and places are taken by one Lua script, atomically: one
token from each bucket and a place under each bound, or nothing, with Redis's own
clock (``TIME``), so processes on hosts whose clocks differ still share one bucket.
Bucket keys expire once their bucket would be full again.

A place under an in-flight bound is a lease: a member of the bound's sorted set,
scored by its expiry.  Taking one drops the expired members, then adds one if fewer
than the bound are left; the answer (or the request's end) removes it.  A process
that dies mid-call cannot give its places back, so every lease expires
``limits.lease_ttl`` after it was last renewed, and the process renews all the leases
it holds every third of that, in one script call per ``RENEW_BATCH`` leases.  Renewal
rather than an expiry picked from a backend's ``timeout``: progress resets that
timeout and a call may wait on its client (sampling, elicitation) for as long as the
user takes, so no expiry fixed at the start both keeps the place of every live call
and frees a dead process's places soon.  A renewal re-adds a lease Redis lost (a
restart): the count tells the truth again, even if above the bound for a while.  A
release or renewal that fails is reported (logged, counted) and left to expiry;
so is a lease whose take timed out after Redis added it.

Scripts are sent by ``EVALSHA``; on ``NOSCRIPT`` (a restarted or flushed Redis) by
``EVAL``, which also caches them: one round trip instead of ``SCRIPT LOAD`` plus
``EVALSHA``.

The client is ``redis_client.py``.  Every call is bounded by ``limits.redis_timeout``
(connecting included): a late or failed answer is ``StoreUnavailable``, and
``on_redis_error`` decides (``ratelimit.py``).  A failed connection is not retried for
``RECONNECT_DELAY``, so a Redis that is down costs each request nothing but the check
of that delay.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections.abc import Coroutine, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from aigw.config.limits import LimitsConfig
from aigw.config.redis import RedisAddress
from aigw.gateway.ratelimit import Bucket, Permit, Slot, Taken
from aigw.gateway.redis_client import Connect, RedisConnection, RedisError
from aigw.gateway.store_failures import StoreFailures, StoreUnavailable

#: KEYS: the buckets' keys, then the bounds'.  ARGV: the number of buckets, the lease's
#: member, its lifetime in ms, each bucket's rate and size, each bound.  The answer:
#: {0, 0}, or {i, ms} when KEYS[i] refused (ms: until its bucket holds a token).
TAKE_SCRIPT = b"""\
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nb = tonumber(ARGV[1])
local levels = {}
for i = 1, nb do
  local rate = tonumber(ARGV[2 + 2 * i])
  local capacity = tonumber(ARGV[3 + 2 * i])
  local state = redis.call('HMGET', KEYS[i], 'n', 't')
  local tokens = capacity
  if state[1] then
    local elapsed = math.max(0, now - tonumber(state[2]))
    tokens = math.min(capacity, tonumber(state[1]) + elapsed * rate)
  end
  if tokens < 1 then
    return {i, math.ceil((1 - tokens) / rate * 1000)}
  end
  levels[i] = tokens
end
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = nb + 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[3 + nb + i]) then
    return {i, 0}
  end
end
for i = 1, nb do
  local rate = tonumber(ARGV[2 + 2 * i])
  local capacity = tonumber(ARGV[3 + 2 * i])
  redis.call('HSET', KEYS[i], 'n', tostring(levels[i] - 1), 't', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(capacity / rate * 1000) + 1000)
end
local ttl = tonumber(ARGV[3])
for i = nb + 1, #KEYS do
  redis.call('ZADD', KEYS[i], now_ms + ttl, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return {0, 0}
"""
#: KEYS[i] holds the lease ARGV[i + 1].  ARGV[1]: the lifetime in ms to renew them
#: for (a lease Redis lost is added again), or 0 to remove them.
LEASE_SCRIPT = b"""\
if redis.replicate_commands then redis.replicate_commands() end
local ttl = tonumber(ARGV[1])
if ttl == 0 then
  for i, key in ipairs(KEYS) do
    redis.call('ZREM', key, ARGV[i + 1])
  end
  return 0
end
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""


def script_id(script: bytes) -> bytes:
    """What ``EVALSHA`` names a script by."""
    return hashlib.sha1(script).hexdigest().encode("ascii")  # noqa: S324 (Redis's script id)


TAKE_SHA = script_id(TAKE_SCRIPT)
LEASE_SHA = script_id(LEASE_SCRIPT)


#: Leases renewed by one script call, at most (its arguments stay a few tens of KiB).
RENEW_BATCH = 500


def _script_reply(reply: Any, buckets: Sequence[Bucket], keys: int) -> bool:
    """Is ``reply`` one the take script can give: ``{0, 0}``, or the index (from 1) of
    one of its ``keys`` and the milliseconds until a refusing bucket holds a token,
    which its rate bounds (``TAKE_SCRIPT``: at most one token's refill)?  Anything
    else would name no rule of the request (an IndexError, a 500) or a wrong one."""
    if not (isinstance(reply, list) and len(reply) == 2):
        return False
    refused, wait_ms = reply
    if not (isinstance(refused, int) and isinstance(wait_ms, int)):
        return False
    if not (0 <= refused <= keys and wait_ms >= 0):
        return False
    if 0 < refused <= len(buckets):
        # +1: rounding may differ between Lua's arithmetic and this one.
        return wait_ms <= math.ceil(1000 / buckets[refused - 1].rate) + 1
    return wait_ms == 0


class Lease(Permit):
    """The places one request holds in Redis: one member, in each bound's key."""

    __slots__ = ("_member", "_store")

    def __init__(self, store: RedisBuckets, member: str) -> None:
        self._store: RedisBuckets | None = store
        self._member = member

    def release(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.release(self._member)


class RedisBuckets(RedisConnection):
    """The ``BucketStore`` in Redis, over one connection (``redis_client.py``).
    ``failures`` hears of the failures no request waits for (releases, renewals): the
    limiter's (``Limiter.store_failures``), which counts its takes' too."""

    def __init__(
        self,
        address: RedisAddress,
        clock: Any,
        timeout: float,
        lease_ttl: float = 30.0,
        connect: Connect | None = None,
        ca_file: str | None = None,
        failures: StoreFailures | None = None,
    ) -> None:
        super().__init__(address, clock, timeout, connect, ca_file)
        self.lease_ttl = lease_ttl
        self.failures = failures
        self._closing = False
        #: The leases this process holds: member -> the keys it is in.  A member is
        #: this store's random prefix and a serial number, unique across processes.
        self.leases: dict[str, tuple[str, ...]] = {}
        self._prefix = os.urandom(8).hex()
        self._serial = itertools.count(1)
        self._renewal: IDelayedCall | None = None

    def follow(self, config: LimitsConfig) -> None:
        self.timeout = config.redis_timeout
        self.lease_ttl = config.lease_ttl

    async def take(self, buckets: Sequence[Bucket], slots: Sequence[Slot] = ()) -> Taken:
        if self._closing:
            raise StoreUnavailable("the limiter is closed")
        keys = [bucket.key for bucket in buckets] + [slot.key for slot in slots]
        member = f"{self._prefix}:{next(self._serial)}" if slots else ""
        argv: list[bytes | str | int | float] = [len(buckets), member, self._ttl_ms()]
        for bucket in buckets:
            argv += [repr(bucket.rate), bucket.capacity]
        argv += [slot.bound for slot in slots]
        reply = await self._bounded(self._script(TAKE_SCRIPT, TAKE_SHA, keys, argv))
        if not _script_reply(reply, buckets, len(keys)):
            raise StoreUnavailable(f"unexpected reply from the limiter script: {reply!r:.200}")
        refused, wait_ms = reply
        if refused:
            return Taken(refused - 1, wait_ms / 1000)
        if not slots or self._closing:
            return Taken(None)  # closed meanwhile (a reload, a stop): left to expire
        self.leases[member] = tuple(slot.key for slot in slots)
        if self._renewal is None:
            self._renewal = self.clock.callLater(self.lease_ttl / 3, self._renew)
        return Taken(None, permit=Lease(self, member))

    def release(self, member: str) -> None:
        """Remove a lease, in the background: never raises, never waits."""
        keys = self.leases.pop(member, None)
        if keys is None:
            return  # given back on close, or never recorded
        pairs = [(key, member) for key in keys]
        self._background(self._leases(pairs, 0), "the place is left to expire")

    def _renew(self) -> None:
        """Every ``lease_ttl / 3`` while this process holds leases: renew them all."""
        self._renewal = None
        if not self.leases:
            return
        pairs = [(key, member) for member, keys in self.leases.items() for key in keys]
        for start in range(0, len(pairs), RENEW_BATCH):
            work = self._leases(pairs[start : start + RENEW_BATCH], self._ttl_ms())
            self._background(work, "leases may expire while their requests run")
        self._renewal = self.clock.callLater(self.lease_ttl / 3, self._renew)

    def _ttl_ms(self) -> int:
        return max(1, round(self.lease_ttl * 1000))

    async def _leases(self, pairs: list[tuple[str, str]], ttl_ms: int) -> Any:
        keys = [key for key, _ in pairs]
        argv: list[bytes | str | int | float] = [ttl_ms, *(member for _, member in pairs)]
        return await self._script(LEASE_SCRIPT, LEASE_SHA, keys, argv)

    def _background(self, work: Coroutine[Any, Any, Any], outcome: str) -> None:
        """``work``, bounded, without anyone waiting: its failure (``StoreUnavailable``,
        as ``_bounded`` makes every error) is reported with ``outcome``."""

        def report(failure: Failure) -> None:
            if self.failures is not None:
                self.failures.failed(failure, outcome=outcome)

        ensureDeferred(self._bounded(work)).addErrback(report)

    async def _bounded(self, work: Coroutine[Any, Any, Any]) -> Any:
        """``work``'s answer within ``timeout``, or StoreUnavailable."""
        call = ensureDeferred(work)
        call.addTimeout(self.timeout, self.clock)
        try:
            return await call
        except StoreUnavailable:
            raise
        except defer.TimeoutError:
            self.drop()  # a late answer would be no answer: a fresh connection next time
            raise StoreUnavailable(f"no answer from Redis within {self.timeout:g} s") from None
        except Exception as error:
            self.drop()
            raise StoreUnavailable(f"Redis: {error or type(error).__name__}") from None

    async def _script(
        self, script: bytes, sha: bytes, keys: list[str], argv: list[bytes | str | int | float]
    ) -> Any:
        protocol = await self.connection()
        try:
            return await protocol.command(b"EVALSHA", sha, len(keys), *keys, *argv)
        except RedisError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
        return await protocol.command(b"EVAL", script, len(keys), *keys, *argv)

    async def check(self) -> float:
        """What ``aigw doctor`` asks of the store: connect as requests would (TLS, AUTH,
        SELECT), load the take script (``SCRIPT LOAD``: a Redis whose ACL refuses
        scripting refuses every take) and PING; the PING's round trip in seconds.
        Raises ``StoreUnavailable`` or ``RedisError`` with what went wrong."""
        protocol = await self.connection()
        loaded = await protocol.command(b"SCRIPT", b"LOAD", TAKE_SCRIPT)
        if loaded != TAKE_SHA:
            raise StoreUnavailable(f"SCRIPT LOAD answered {loaded!r}, not the script's id")
        return await self.round_trip()

    async def close(self) -> None:
        """Give back the places still held (a stop, or a reload to another Redis: the
        new store knows nothing of them), within ``timeout``, then disconnect."""
        if self._closing:
            return
        self._closing = True
        if self._renewal is not None and self._renewal.active():
            self._renewal.cancel()
        self._renewal = None
        leases, self.leases = self.leases, {}
        pairs = [(key, member) for member, keys in leases.items() for key in keys]
        for start in range(0, len(pairs), RENEW_BATCH):
            try:
                await self._bounded(self._leases(pairs[start : start + RENEW_BATCH], 0))
            except StoreUnavailable as error:
                if self.failures is not None:
                    self.failures.report(error, outcome="the places are left to expire")
                break
        await super().close()
