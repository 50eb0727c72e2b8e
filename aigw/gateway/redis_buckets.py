"""Token buckets in Redis, shared by every aigw process (``limits.redis_url``).

Each request's buckets are taken by one Lua script, atomically: one token from
each, or none, with Redis's own clock (``TIME``), so processes on hosts whose
clocks differ still share one bucket.  The script is sent by ``EVALSHA``; on
``NOSCRIPT`` (a restarted or flushed Redis) by ``EVAL``, which also caches it:
one round trip instead of ``SCRIPT LOAD`` plus ``EVALSHA``.  Keys expire once
their bucket would be full again.

The client is ``redis_client.py``.  Every call is bounded by ``limits.redis_timeout``
(connecting included): a late or failed answer is ``StoreUnavailable``, and
``on_redis_error`` decides (``ratelimit.py``).  A failed connection is not retried for
``RECONNECT_DELAY``, so a Redis that is down costs each request nothing but the check
of that delay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import ensureDeferred

from aigw.gateway.ratelimit import Bucket, StoreUnavailable, Taken
from aigw.gateway.redis_client import RedisConnection, RedisError

TAKE_SCRIPT = b"""\
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local capacity = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'n', 't')
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
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local capacity = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'n', tostring(levels[i] - 1), 't', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(capacity / rate * 1000) + 1000)
end
return {0, 0}
"""
TAKE_SHA = hashlib.sha1(TAKE_SCRIPT).hexdigest().encode("ascii")  # noqa: S324 (Redis's script id)


class RedisBuckets(RedisConnection):
    """The ``BucketStore`` in Redis, over one connection (``redis_client.py``)."""

    async def take(self, buckets: Sequence[Bucket]) -> Taken:
        keys = [bucket.key for bucket in buckets]
        argv: list[bytes | str | int | float] = []
        for bucket in buckets:
            argv += [repr(bucket.rate), bucket.capacity]
        call = ensureDeferred(self._take(keys, argv))
        call.addTimeout(self.timeout, self.clock)
        try:
            reply = await call
        except StoreUnavailable:
            raise
        except Exception as error:
            self._drop()  # a late answer would be no answer: a fresh connection next time
            raise StoreUnavailable(f"Redis: {error or type(error).__name__}") from None
        if not (
            isinstance(reply, list) and len(reply) == 2 and all(isinstance(v, int) for v in reply)
        ):
            raise StoreUnavailable(f"unexpected reply from the limiter script: {reply!r}")
        refused, wait_ms = reply
        return Taken(refused - 1, wait_ms / 1000) if refused else Taken(None)

    async def _take(self, keys: list[str], argv: list[bytes | str | int | float]) -> Any:
        protocol = await self._connection()
        try:
            return await protocol.command(b"EVALSHA", TAKE_SHA, len(keys), *keys, *argv)
        except RedisError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
        return await protocol.command(b"EVAL", TAKE_SCRIPT, len(keys), *keys, *argv)

    async def check(self) -> float:
        """What ``aigw doctor`` asks of the store: connect as requests would (TLS, AUTH,
        SELECT), load the take script (``SCRIPT LOAD``: a Redis whose ACL refuses
        scripting refuses every take) and PING; the PING's round trip in seconds.
        Raises ``StoreUnavailable`` or ``RedisError`` with what went wrong."""
        protocol = await self._connection()
        loaded = await protocol.command(b"SCRIPT", b"LOAD", TAKE_SCRIPT)
        if loaded != TAKE_SHA:
            raise StoreUnavailable(f"SCRIPT LOAD answered {loaded!r}, not the script's id")
        started = self.clock.seconds()
        await protocol.command(b"PING")
        return float(self.clock.seconds() - started)
