"""A small RESP2 client for aigw's shared state in Redis, over a Twisted ``Protocol``.

txredisapi is unmaintained (no release since 2021) and aigw needs a handful of commands:
the limiter's token buckets (``redis_buckets.py``) and the ended session ids
(``ended_sessions.py``).  ``RedisConnection`` is one connection, opened on first use
(TCP, verified TLS for ``rediss://``, then ``AUTH`` and ``SELECT`` as the URL says),
reopened on demand once lost, not sooner than ``RECONNECT_DELAY`` after a failure, so
a Redis that is down costs its callers nothing but the check of that delay.  Commands
are pipelined on it; replies answer them in order (``RESPProtocol``), except the
messages of a subscription, which a subclass takes (``handle``).  Replies are read
(``RESPReader``) as a server that is not Redis, or is broken, may send them: at most
``MAX_REPLY_BYTES`` held, ``MAX_NESTING`` arrays deep, each byte parsed once; anything
else cuts the connection and fails the commands waiting on it.  On a subscription, a
published message too long to hold is skipped (``Skipped``), not a cut: anyone who can
PUBLISH would otherwise cut every process's subscription with one long note.  A command
whose caller gave up on it (its deadline) cuts its connection: a reply still coming
would keep a trickling server's connection open for ever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.endpoints import connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from aigw import tls
from aigw.config.redis import RedisAddress
from aigw.gateway.store_failures import StoreUnavailable

#: Seconds without a new connection attempt after one failed.
RECONNECT_DELAY = 1.0
#: The largest reply buffered (aigw's replies are a few bytes, a SCAN page a few KiB).
MAX_REPLY_BYTES = 64 * 1024
#: Commands waiting for their replies on one connection, at most.
MAX_PENDING = 10_000
#: The deepest array read: aigw's deepest reply is SCAN's (an array in an array).  A
#: server nesting deeper is not Redis answering aigw, and each level costs a frame of
#: the parser's recursion.
MAX_NESTING = 4


class RedisError(Exception):
    """An error reply (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _Incomplete:
    pass


_INCOMPLETE = _Incomplete()


@dataclass(frozen=True)
class Skipped:
    """The payload of a pub/sub ``message`` too long to hold, in its place: ``size``
    bytes, discarded as they came."""

    size: int


class RESPReader:
    """RESP2 replies out of the bytes received, each byte read once: an array is kept
    open across reads (a stack of the arrays being filled), so a server trickling a long
    array one item per read costs each item once, not the whole array again at each
    read (4 000 items trickled took 21 s of the reactor's CPU that way).  ``feed``
    raises ValueError for anything that is not RESP2 (a wrong type byte, a length that
    is not a number, arrays nested deeper than ``MAX_NESTING``, a reply past
    ``max_bytes``).  With ``skip_messages`` (a subscribed connection), the payload of a
    ``message`` (``*3 message <channel> <payload>``, Redis's pub/sub reply) that would
    take the reply past ``max_bytes`` is not held but discarded as it comes, a
    ``Skipped`` in its place; its framing (the length, the CRLF after it) is still
    checked."""

    def __init__(self, max_bytes: int = MAX_REPLY_BYTES, skip_messages: bool = False) -> None:
        self.max_bytes = max_bytes
        self.skip_messages = skip_messages
        self._buffer = bytearray()
        #: The arrays being read, outermost first: items still to come, items so far.
        self._open: list[tuple[int, list[Any]]] = []
        #: Bytes of the reply being read that were consumed already.
        self._consumed = 0
        #: Bytes of a skipped payload (its CRLF included) still to discard, and its size.
        self._skip = 0
        self._skipped = 0

    def __len__(self) -> int:
        """Bytes held: the reply being read, as far as it came."""
        return self._consumed + len(self._buffer)

    def feed(self, data: bytes) -> list[Any]:
        """The replies ``data`` completes, in order."""
        replies: list[Any] = []
        if self._skip:  # a payload being skipped: its bytes are never buffered
            taken = min(self._skip, len(data))
            self._discard(data, 0, taken)
            data = data[taken:]
            if not self._skip:
                self._complete(Skipped(self._skipped), replies)
        self._buffer += data
        pos = 0
        try:
            while True:
                item = self._item(pos)
                if isinstance(item, _Incomplete):
                    break
                value, after = item
                self._consumed += after - pos
                pos = after
                if value is _OPENED:
                    continue
                if value is _SKIPPING:
                    taken = min(self._skip, len(self._buffer) - pos)
                    self._discard(self._buffer, pos, taken)
                    pos += taken
                    if self._skip:
                        break
                    value = Skipped(self._skipped)
                self._complete(value, replies)
        finally:
            del self._buffer[:pos]
        if len(self) > self.max_bytes:
            raise ValueError("Redis reply too large")
        return replies

    def _complete(self, value: Any, replies: list[Any]) -> None:
        """``value`` read: it completes the arrays it ends, or is a reply itself."""
        while self._open:
            left, values = self._open[-1]
            values.append(value)
            if left > 1:
                self._open[-1] = (left - 1, values)
                return
            self._open.pop()
            value = values
        replies.append(value)
        self._consumed = 0

    def _discard(self, data: bytes | bytearray, start: int, taken: int) -> None:
        """``taken`` bytes of a skipped payload from ``data[start:]``, the last two of
        the payload's checked to be its CRLF."""
        crlf = start + self._skip - 2  # where the CRLF begins in ``data``
        for index in range(max(start, crlf), start + taken):
            if data[index] != b"\r\n"[index - crlf]:
                raise ValueError("a bulk string not ended by CRLF")
        self._skip -= taken

    def _skippable(self) -> bool:
        """The bulk string that comes is the payload of a pub/sub ``message``: the last
        of a three-item array (the only one open) after ``message`` and its channel."""
        if not self.skip_messages or len(self._open) != 1:
            return False
        left, values = self._open[0]
        return left == 1 and len(values) == 2 and values[0] == b"message"

    def _item(self, pos: int) -> tuple[Any, int] | _Incomplete:
        """The value (or a new array, ``_OPENED``; a payload to skip, ``_SKIPPING``) at
        ``pos`` and where the next item begins; ``_INCOMPLETE`` when it has not all come
        yet."""
        buffer = self._buffer
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
            if self._consumed + (after - pos) + size + 2 > self.max_bytes:
                if not self._skippable():
                    raise ValueError("Redis reply too large")
                self._skip, self._skipped = size + 2, size
                return _SKIPPING, after
            if len(buffer) < after + size + 2:
                return _INCOMPLETE
            return bytes(buffer[after : after + size]), after + size + 2
        if kind == b"*":
            count = int(line)
            if count < 0:
                return None, after
            if count == 0:
                return [], after
            if len(self._open) >= MAX_NESTING:
                raise ValueError(f"RESP2 arrays nested deeper than {MAX_NESTING}")
            self._open.append((count, []))
            return _OPENED, after
        raise ValueError(f"not a RESP2 reply: {bytes(kind)!r}")


#: What ``RESPReader._item`` answers for the start of an array, and of a payload skipped.
_OPENED: Any = object()
_SKIPPING: Any = object()


def encode(*args: bytes | str | int | float) -> bytes:
    """A command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RESPProtocol(Protocol):
    """Pipelined commands on one connection; replies answer them in order."""

    #: A subscribed connection's: a published message too long to hold is skipped.
    skips_messages = False

    def __init__(self) -> None:
        self._reader = RESPReader(skip_messages=self.skips_messages)
        self._pending: deque[Deferred[Any]] = deque()
        self.lost = False

    def command(self, *args: bytes | str | int | float) -> Deferred[Any]:
        """The reply to a command; cancelling it (a deadline, ``addTimeout``) cuts the
        connection (``_given_up``)."""
        if self.lost or self.transport is None:
            raise StoreUnavailable("not connected to Redis")
        if len(self._pending) >= MAX_PENDING:
            raise StoreUnavailable("too many Redis commands waiting for a reply")
        waiting: Deferred[Any] = Deferred(self._given_up)
        self._pending.append(waiting)
        self.transport.write(encode(*args))
        return waiting

    def _given_up(self, waiting: Deferred[Any]) -> None:
        """A command given up on before its reply: the connection is cut, as the reply
        may still be coming (a server trickling it byte by byte would keep the
        connection for ever) and every reply after it would wait for it.  The command
        fails with ``CancelledError`` (``addTimeout`` makes it its ``TimeoutError``)
        first, then the others waiting with ``StoreUnavailable``: commands sent together
        and given up on together (``gatherResults``) fail for their deadline, not for the
        cut it caused.  The next command connects again."""
        self._pending.remove(waiting)
        waiting.errback(Failure(CancelledError()))
        self._fail("a Redis command was given up on before its reply")

    def dataReceived(self, data: bytes) -> None:
        if self.lost:
            return
        try:
            replies = self._reader.feed(data)
        except ValueError as error:
            self._fail(str(error))
            return
        for value in replies:
            if self.lost:
                return
            self.handle(value)

    def handle(self, value: Any) -> None:
        """One reply: it answers the oldest command waiting."""
        if not self._pending:
            self._fail("Redis replied to no command")
            return
        waiting = self._pending.popleft()
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

    def abort(self) -> None:
        """Close at once, without waiting for what is left to write."""
        if not self.lost and self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]


Connect = Callable[[], "Deferred[RESPProtocol]"]


class RedisConnection:
    """One connection to the Redis at ``address``, opened on first use, reopened on
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
        #: A connection made whose AUTH or SELECT is under way.
        self._opening: RESPProtocol | None = None
        self._waiters: list[Deferred[RESPProtocol]] = []
        self._connecting = False
        self._retry_at = 0.0
        self._closed = False

    def _new_protocol(self) -> RESPProtocol:
        return RESPProtocol()

    def _connect_server(self) -> Deferred[RESPProtocol]:
        """TCP to the address, with verified TLS over it for ``rediss://`` (the name or
        address in the URL checked against the certificate, as ``https`` backends are)."""
        address = self.address
        endpoint = tls.tcp_endpoint(self.clock, address.host, address.port, max(1.0, self.timeout))
        if address.tls:
            endpoint = tls.client_endpoint(endpoint, address.host, self.clock, self.ca_file)
        connected: Deferred[RESPProtocol] = connectProtocol(endpoint, self._new_protocol())
        return connected

    def connection(self) -> Deferred[RESPProtocol]:
        """The open connection, or one being opened (callers waiting share it); raises
        ``StoreUnavailable`` at once when closed or within ``RECONNECT_DELAY`` of a
        failure."""
        protocol = self._protocol
        if protocol is not None and not protocol.lost:
            return succeed(protocol)
        if self._closed:
            raise StoreUnavailable("the Redis client is closed")
        if self.clock.seconds() < self._retry_at:
            raise StoreUnavailable("Redis unreachable; not retrying yet")
        waiter: Deferred[RESPProtocol] = Deferred()
        self._waiters.append(waiter)
        if not self._connecting:
            self._connecting = True
            ensureDeferred(self._open())
        return waiter

    async def _open(self) -> None:
        """Connect, then AUTH and SELECT as the URL says, each bounded like connecting:
        a server that accepts and never answers is a failed connection, not a hang."""
        try:
            protocol = self._opening = await self._connect()
            address = self.address
            bound = max(1.0, self.timeout)
            if address.password is not None:
                auth = (
                    [address.username, address.password] if address.username else [address.password]
                )
                await protocol.command(b"AUTH", *auth).addTimeout(bound, self.clock)
            if address.db:
                await protocol.command(b"SELECT", address.db).addTimeout(bound, self.clock)
        except Exception as error:
            if self._opening is not None:
                self._opening.abort()
            self._retry_at = self.clock.seconds() + RECONNECT_DELAY
            outcome: Any = Failure(StoreUnavailable(f"cannot connect to Redis: {error}"))
        else:
            if self._closed:  # closed (a reload, a stop) while connecting
                protocol.close()
            self._protocol = outcome = protocol
        self._opening = None
        self._connecting = False
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.called:
                continue
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    def drop(self) -> None:
        """Abort the connection (its answers are late or wrong): the next use opens one."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.abort()

    async def round_trip(self) -> float:
        """A PING's round trip in seconds, on this connection (``aigw doctor``)."""
        protocol = await self.connection()
        started = self.clock.seconds()
        await protocol.command(b"PING")
        return float(self.clock.seconds() - started)

    async def close(self) -> None:
        self._closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.close()
        if self._opening is not None:  # its AUTH or SELECT fails now
            self._opening.abort()
