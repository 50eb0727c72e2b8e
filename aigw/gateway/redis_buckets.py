"""Token buckets in Redis, shared by every aigw process (``limits.redis_url``).

Each request's buckets are taken by one Lua script, atomically: one token from
each, or none, with Redis's own clock (``TIME``), so processes on hosts whose
clocks differ still share one bucket.  The script is sent by ``EVALSHA``; on
``NOSCRIPT`` (a restarted or flushed Redis) by ``EVAL``, which also caches it:
one round trip instead of ``SCRIPT LOAD`` plus ``EVALSHA``.  Keys expire once
their bucket would be full again.

The client is a small RESP2 client over a Twisted ``Protocol``: txredisapi is
unmaintained (no release since 2021) and the limiter needs four commands.  Every
call is bounded by ``limits.redis_timeout`` (connecting included): a late or
failed answer is ``StoreUnavailable``, and ``on_redis_error`` decides
(``ratelimit.py``).  A failed connection is not retried for ``RECONNECT_DELAY``, so
a Redis that is down costs each request nothing but the check of that delay.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.endpoints import connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from aigw import tls
from aigw.config.redis import RedisAddress
from aigw.gateway.ratelimit import Bucket, StoreUnavailable, Taken

#: Seconds without a new connection attempt after one failed.
RECONNECT_DELAY = 1.0
#: The largest reply buffered (the limiter's replies are a few bytes).
MAX_REPLY_BYTES = 64 * 1024
#: Commands waiting for their replies on one connection, at most.
MAX_PENDING = 10_000

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


class RedisError(Exception):
    """An error reply (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _Incomplete:
    pass


_INCOMPLETE = _Incomplete()


def _parse(buffer: bytearray, pos: int) -> tuple[Any, int] | _Incomplete:
    """One RESP2 reply at ``pos``: the value and where the next begins."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE
    kind, line, after = buffer[pos : pos + 1], bytes(buffer[pos + 1 : end]), end + 2
    if kind == b"+":
        return line.decode("utf-8", "replace"), after
    if kind == b"-":
        return RedisError(line.decode("utf-8", "replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            return _INCOMPLETE
        return bytes(buffer[after : after + size]), after + size + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        values = []
        for _ in range(count):
            parsed = _parse(buffer, after)
            if isinstance(parsed, _Incomplete):
                return parsed
            value, after = parsed
            values.append(value)
        return values, after
    raise ValueError(f"not a RESP2 reply: {bytes(kind)!r}")


def encode(*args: bytes | str | int | float) -> bytes:
    """A command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RESPProtocol(Protocol):
    """Pipelined commands on one connection; replies answer them in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: deque[Deferred[Any]] = deque()
        self.lost = False

    def command(self, *args: bytes | str | int | float) -> Deferred[Any]:
        if self.lost or self.transport is None:
            raise StoreUnavailable("not connected to Redis")
        if len(self._pending) >= MAX_PENDING:
            raise StoreUnavailable("too many Redis commands waiting for a reply")
        waiting: Deferred[Any] = Deferred()
        self._pending.append(waiting)
        self.transport.write(encode(*args))
        return waiting

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while self._buffer:
            try:
                parsed = _parse(self._buffer, 0)
            except ValueError as error:
                self._fail(str(error))
                return
            if isinstance(parsed, _Incomplete):
                if len(self._buffer) > MAX_REPLY_BYTES:
                    self._fail("Redis reply too large")
                return
            value, after = parsed
            del self._buffer[:after]
            if not self._pending:
                self._fail("Redis replied to no command")
                return
            waiting = self._pending.popleft()
            if waiting.called:
                continue  # given up on (timed out): its reply is dropped
            if isinstance(value, RedisError):
                waiting.errback(Failure(value))
            else:
                waiting.callback(value)

    def _fail(self, reason: str) -> None:
        assert self.transport is not None
        self.transport.abortConnection()  # type: ignore[attr-defined]
        self._lost(reason)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self._lost(f"connection to Redis lost: {reason.getErrorMessage()}")

    def _lost(self, reason: str) -> None:
        self.lost = True
        pending, self._pending = self._pending, deque()
        for waiting in pending:
            if not waiting.called:
                waiting.errback(Failure(StoreUnavailable(reason)))

    def close(self) -> None:
        if not self.lost and self.transport is not None:
            self.transport.loseConnection()


Connect = Callable[[], "Deferred[RESPProtocol]"]


class RedisBuckets:
    """The ``BucketStore`` in Redis; one connection, opened on first use, reopened on
    demand once lost (not sooner than ``RECONNECT_DELAY`` after a failure)."""

    def __init__(
        self,
        address: RedisAddress,
        clock: Any,
        timeout: float,
        connect: Connect | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.address = address
        self.clock = clock
        self.timeout = timeout
        #: The trust of a ``rediss://`` server (None: the system's roots).
        self.ca_file = ca_file
        self._connect = connect or self._connect_server
        self._protocol: RESPProtocol | None = None
        self._waiters: list[Deferred[RESPProtocol]] = []
        self._connecting = False
        self._retry_at = 0.0
        self._closed = False

    def _connect_server(self) -> Deferred[RESPProtocol]:
        """TCP to the address, with verified TLS over it for ``rediss://`` (the name or
        address in the URL checked against the certificate, as ``https`` backends are)."""
        address = self.address
        endpoint = tls.tcp_endpoint(self.clock, address.host, address.port, max(1.0, self.timeout))
        if address.tls:
            endpoint = tls.client_endpoint(endpoint, address.host, self.clock, self.ca_file)
        connected: Deferred[RESPProtocol] = connectProtocol(endpoint, RESPProtocol())
        return connected

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

    def _connection(self) -> Deferred[RESPProtocol]:
        protocol = self._protocol
        if protocol is not None and not protocol.lost:
            return succeed(protocol)
        if self._closed:
            raise StoreUnavailable("the limiter is closed")
        if self.clock.seconds() < self._retry_at:
            raise StoreUnavailable("Redis unreachable; not retrying yet")
        waiter: Deferred[RESPProtocol] = Deferred()
        self._waiters.append(waiter)
        if not self._connecting:
            self._connecting = True
            ensureDeferred(self._open())
        return waiter

    async def _open(self) -> None:
        try:
            protocol = await self._connect()
            address = self.address
            if address.password is not None:
                auth = (
                    [address.username, address.password] if address.username else [address.password]
                )
                await protocol.command(b"AUTH", *auth)
            if address.db:
                await protocol.command(b"SELECT", address.db)
        except Exception as error:
            self._retry_at = self.clock.seconds() + RECONNECT_DELAY
            outcome: Any = Failure(StoreUnavailable(f"cannot connect to Redis: {error}"))
        else:
            if self._closed:  # closed (a reload, a stop) while connecting
                protocol.close()
            self._protocol = outcome = protocol
        self._connecting = False
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.called:
                continue
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    def _drop(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and not protocol.lost and protocol.transport is not None:
            protocol.transport.abortConnection()  # type: ignore[attr-defined]

    async def close(self) -> None:
        self._closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.close()
