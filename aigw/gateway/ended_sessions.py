"""Sessions ended with DELETE are ended on every process (``sessions.redis_url``).

MCP 2025-11-25 basic/transports "Session Management": once a client's DELETE has ended
a session, the server MUST answer requests carrying its ``Mcp-Session-Id`` with 404.
Session ids are sealed, so any process would open an ended one until its ttl; each
process remembers the ids it ended (``SessionCodec.end``), and with Redis every process
learns of the others' (``SessionCodec.ended_elsewhere``).  Redis is the truth, pub/sub
the fast path:

* DELETE ends the id in its process at once; then, without the request waiting, that
  process SETs ``aigw:ended:<hex SHA-256 of the id>`` with PX the id's remaining
  lifetime, and PUBLISHes ``<hex> <milliseconds left>`` on ``aigw:ended``;
* every process keeps a connection SUBSCRIBEd to that channel (a dedicated one: a
  subscribed RESP2 connection takes no other command) and remembers what it hears;
  the same connection follows the other channels the process ``listen``s to
  (``elicitation_completions.py``, ``shared_stream_probes.py``), each message
  dispatched by its channel; one too long to hold (``MAX_REPLY_BYTES``) is skipped as
  it comes and counted, the connection kept (``redis_client.Skipped``);
* each time that connection is made again, once SUBSCRIBE is confirmed (so nothing
  falls between the two), SCAN MATCH ``aigw:ended:*`` and PTTL catch up on what was
  ended meanwhile (at most ``ENDED_MAX`` ids, the bound of the codec's memory).

Ordinary requests never touch Redis.  When Redis fails, a DELETE still ends its
session in its process; the failure is counted (``aigw_session_store_failures_total``)
and logged at most every ``STORE_LOG_INTERVAL`` (``store_failures.py``); the
subscription is made again with a backoff from ``RECONNECT_DELAY`` to ``MAX_BACKOFF``,
and a ``PING`` every ``HEARTBEAT`` notices a connection that died silently.  The ends
Redis did not take are told again once the subscription is back (at most
``UNTOLD_MAX``), so the others learn of them late rather than never, and tried once
more as the process stops (those Redis still does not take are said in a warning).
Every Redis call is bounded by ``sessions.redis_timeout`` (``timeout``),
once: making the connection when there is none counts in the call's bound, not beside it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    FirstError,
    ensureDeferred,
    gatherResults,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from aigw.config.redis import RedisAddress
from aigw.gateway.redis_client import (
    MAX_REPLY_BYTES,
    RECONNECT_DELAY,
    Connect,
    RedisConnection,
    RESPProtocol,
    Skipped,
)
from aigw.gateway.store_failures import StoreFailures, StoreUnavailable, why
from aigw.lru import LRU
from aigw.sealed.session_id import ENDED_MAX, Ended, SessionCodec

CHANNEL = b"aigw:ended"
KEY_PREFIX = b"aigw:ended:"
#: Keys SCAN is asked to look at per call while catching up.
SCAN_COUNT = 1000
#: SCAN pages read in one catch-up, at most (10 million keys looked at): a server whose
#: cursor never comes back to 0 does not keep the catch-up going for ever.
MAX_SCAN_PAGES = 10_000
#: Seconds between PINGs on the subscription.
HEARTBEAT = 15.0
#: The longest wait before subscribing again after a failure.
MAX_BACKOFF = 30.0
#: Ends Redis did not take, kept to be told again (beyond: the oldest are not).
UNTOLD_MAX = 10_000
_DIGEST_HEX = re.compile(rb"[0-9a-fA-F]{64}")
#: The most digits a note's lifetime may have (1e15 ms: 31 000 years; the codec bounds
#: it by the session ttl anyway): a longer one is not a number of aigw's.
MAX_LEFT_DIGITS = 15
T = TypeVar("T")
#: The warning about Redis failing (``StoreFailures``).
STORE_FAILED_LINE = (
    "ended sessions store {where} unavailable while {doing} ({count} failures since "
    "the last report, {total} in all): {error}; a DELETE still ends its session in "
    "its own process"
)


def announcement(ended: Ended, now: float) -> bytes | None:
    """What is published for ``ended``: ``<hex digest> <milliseconds left>``; None once
    it expired."""
    left = math.ceil((ended.expires - now) * 1000)
    return b"%s %d" % (ended.digest.hex().encode("ascii"), left) if left > 0 else None


def digest_of(text: bytes) -> bytes | None:
    """The SHA-256 a key's or a message's hex names (64 hex digits, nothing else:
    ``bytes.fromhex`` alone would skip whitespace); None when it names none."""
    if not isinstance(text, bytes) or not _DIGEST_HEX.fullmatch(text):
        return None
    return bytes.fromhex(text.decode("ascii"))


async def together(sent: list[Deferred[Any]]) -> list[Any]:
    """The replies to commands sent together; a failure is the first one's, as itself."""
    try:
        return await gatherResults(sent, consumeErrors=True)
    except FirstError as error:
        error.subFailure.raiseException()


class SubscriberProtocol(RESPProtocol):
    """A subscribed connection: published messages go to ``heard``, those too long to
    hold (``Skipped``) to ``skipped``; replies (to SUBSCRIBE, PING) answer their
    commands; ``gone`` is told when it goes."""

    skips_messages = True

    def __init__(
        self,
        heard: Callable[[bytes, bytes], None],
        skipped: Callable[[bytes, int], None],
        gone: Callable[[], None],
    ) -> None:
        super().__init__()
        self._heard = heard
        self._skipped = skipped
        self._gone = gone

    def handle(self, value: Any) -> None:
        if isinstance(value, list) and len(value) == 3 and value[0] == b"message":
            channel, payload = value[1], value[2]
            if isinstance(channel, bytes) and isinstance(payload, bytes):
                self._heard(channel, payload)
            elif isinstance(channel, bytes) and isinstance(payload, Skipped):
                self._skipped(channel, payload.size)
            return
        super().handle(value)

    def _lost(self, reason: str) -> None:
        super()._lost(reason)
        self._gone()


class _Subscription(RedisConnection):
    """The dedicated connection of the subscription."""

    def __init__(
        self,
        address: RedisAddress,
        clock: Any,
        heard: Callable[[bytes, bytes], None],
        skipped: Callable[[bytes, int], None],
        gone: Callable[[], None],
        connect: Connect | None,
        ca_file: str | None,
        timeout: float,
    ) -> None:
        super().__init__(address, clock, timeout, connect, ca_file)
        self._heard = heard
        self._skipped = skipped
        self._gone = gone

    def _new_protocol(self) -> RESPProtocol:
        return SubscriberProtocol(self._heard, self._skipped, self._gone)


class EndedSessions(Service):
    """Tells every process the sessions this one ended, and ``codec`` the others'."""

    log = Logger()

    def __init__(
        self,
        codec: SessionCodec,
        address: RedisAddress,
        clock: Any,
        timeout: float,
        ca_file: str | None = None,
        connect: Connect | None = None,
    ) -> None:
        """``timeout``: ``sessions.redis_timeout``, the bound of each call; ``connect``:
        how both connections are made (tests); TCP, TLS for ``rediss://``."""
        self.codec = codec
        self.clock = clock
        self.address = address
        self.timeout = timeout
        #: Times Redis failed or timed out, or a note heard was malformed; reported
        #: with what was being done (``doing``).
        self.failures = StoreFailures(clock, self.log, STORE_FAILED_LINE, where=str(address))
        #: Ends this process could not tell, by digest: when they expire.
        self._untold: LRU[bytes, float] = LRU(UNTOLD_MAX)
        self._commands = RedisConnection(address, clock, timeout, connect, ca_file)
        self._subscription = _Subscription(
            address,
            clock,
            self._dispatch,
            self._skipped,
            self._connection_lost,
            connect,
            ca_file,
            timeout,
        )
        #: What hears each channel followed, this one's first.
        self._channels: dict[bytes, Callable[[bytes], None]] = {CHANNEL: self._message}
        #: The first subscription and catch-up were tried (succeeded or failed): until
        #: then a process just started may not know the ids ended before it.
        self.tried = False
        self._following: Deferred[None] | None = None
        #: The loop's wait, and whether a lost connection ends it (a heartbeat's does,
        #: a backoff's does not).
        self._sleeping: tuple[Deferred[None], bool] | None = None

    # -- this process's ends ---------------------------------------------------

    def announce(self, ended: Ended) -> None:
        """Tell the others of a DELETE, in the background: the request does not wait.
        An end Redis did not take is told again once the subscription is made again."""
        message = announcement(ended, self.clock.seconds())
        if message is None or not self.running:
            return
        announcing = self._bounded(self._announce(message))
        announcing.addErrback(self._announce_failed, ended)

    def _announce_failed(self, failure: Failure, ended: Ended) -> None:
        self._untold.put(ended.digest, ended.expires)
        self.failures.failed(failure, doing="telling an end")

    def _take_untold(self) -> list[Ended]:
        """The ends Redis did not take, no longer kept here (told again, they are kept
        again if Redis fails them again)."""
        digests = self._untold.keys()
        return [Ended(digest, self._untold.pop(digest) or 0.0) for digest in digests]

    def _tell_untold(self) -> int:
        """The ends Redis did not take, told again (those not expired meanwhile)."""
        untold = self._take_untold()
        for ended in untold:
            self.announce(ended)
        return len(untold)

    async def _announce(self, message: bytes) -> None:
        protocol = await self._commands.connection()
        digest, left = message.split(b" ")
        stored = protocol.command(b"SET", KEY_PREFIX + digest, b"1", b"PX", left)
        published = protocol.command(b"PUBLISH", CHANNEL, message)
        await together([stored, published])

    # -- the others' -------------------------------------------------------------

    def listen(self, channel: bytes, heard: Callable[[bytes], None]) -> None:
        """Also follow ``channel`` on the subscription (before the service starts):
        ``heard`` gets each message published there."""
        self._channels[channel] = heard

    async def command(self, *args: bytes | str | int | float) -> Any:
        """One command on the connection of commands, within ``timeout`` (connecting
        included)."""
        return await self._bounded(self._command(*args))

    async def _command(self, *args: bytes | str | int | float) -> Any:
        protocol = await self._commands.connection()
        return await protocol.command(*args)

    def publish(self, channel: bytes, message: bytes, doing: str) -> None:
        """PUBLISH on the connection of commands, in the background (nobody waits); a
        failure is counted and logged as ``doing``."""
        publishing = ensureDeferred(self.command(b"PUBLISH", channel, message))
        publishing.addErrback(lambda failure: self.failures.failed(failure, doing=doing))

    def ignored(self, what: str, payload: bytes) -> None:
        """A malformed message heard: counted, and logged like the failures."""
        self.failures.report(
            ValueError(f"ignored a malformed {what}: {payload[:80]!r}"), doing="hearing"
        )

    def _skipped(self, channel: bytes, size: int) -> None:
        """A message too long to hold (``MAX_REPLY_BYTES``), skipped as it came: counted
        and logged like a malformed one, the subscription kept (cutting it would lose
        every note published until it is made again, at each such message)."""
        self.failures.report(
            ValueError(
                f"skipped a note of {size} bytes on {channel!r}, "
                f"over the {MAX_REPLY_BYTES}-byte bound"
            ),
            doing="hearing",
        )

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        """A message heard, to its channel's reader.  Anyone who can PUBLISH on this
        Redis can send any bytes: what a reader did not foresee and raised is counted
        and logged as a malformed note, and the subscription lives on (an exception
        escaping would cut its connection, with a traceback)."""
        heard = self._channels.get(channel)
        if heard is None:
            return
        try:
            heard(payload)
        except Exception as error:
            self.ignored(f"note on {channel!r} ({type(error).__name__}: {error})", payload)

    def _message(self, payload: bytes) -> None:
        parts = payload.split(b" ")
        digest = digest_of(parts[0]) if len(parts) == 2 else None
        left = parts[-1]
        if digest is None or not (left.isdigit() and len(left) <= MAX_LEFT_DIGITS):
            self.ignored("message", payload)  # counted, and logged like failures
            return
        self._remember(digest, int(left))

    def _remember(self, digest: bytes, left_ms: int) -> None:
        """``digest`` ended elsewhere, ``left_ms`` from now (bounded: a PTTL reply is
        any integer, and the codec keeps none beyond its ttl)."""
        left = min(left_ms, 10**MAX_LEFT_DIGITS) / 1000
        self.codec.ended_elsewhere(digest, self.clock.seconds() + left)

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._following = ensureDeferred(self._follow())

    async def _follow(self) -> None:
        """Subscribe, catch up, then PING now and then; again after a backoff when any
        of it fails, until the service stops."""
        backoff = RECONNECT_DELAY
        while self.running:
            try:
                protocol = await self._bounded(self._subscribe())
                caught_up = await self._catch_up()
                self.tried = True
                self.log.info(
                    "following ended sessions at {where}: {count} ended elsewhere meanwhile, "
                    "{untold} ended here told again",
                    where=str(self.address),
                    count=caught_up,
                    untold=self._tell_untold(),
                )
                backoff = RECONNECT_DELAY
                while self.running and not protocol.lost:
                    await self._sleep(HEARTBEAT, until_lost=True)
                    if self.running and not protocol.lost:
                        await self._bounded(protocol.command(b"PING"))
                if self.running:
                    raise ConnectionError("the subscription's connection was lost")
            except Exception as error:
                if not self.running:
                    return
                self.failures.report(error, doing="following ended sessions")
                self.tried = True
                self._subscription.drop()
                await self._sleep(backoff, until_lost=False)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _subscribe(self) -> RESPProtocol:
        """The subscription's connection, SUBSCRIBEd to every channel followed."""
        protocol = await self._subscription.connection()
        for channel in self._channels:
            await protocol.command(b"SUBSCRIBE", channel)
        return protocol

    async def _catch_up(self) -> int:
        """What was ended while this process was not subscribed: every ``aigw:ended:*``
        key and its PTTL, SCAN_COUNT keys looked at per page (each page one call, within
        ``timeout``), at most ENDED_MAX ids and MAX_SCAN_PAGES pages (beyond:
        ``StoreUnavailable``, a failure of following)."""
        cursor, found = b"0", 0
        for _ in range(MAX_SCAN_PAGES):
            if found >= ENDED_MAX:
                break
            cursor, lives = await self._bounded(self._page(cursor, ENDED_MAX - found))
            for digest, left_ms in lives:
                if isinstance(left_ms, int) and left_ms > 0:
                    self._remember(digest, left_ms)
                    found += 1
            if cursor == b"0":
                break
        else:
            raise StoreUnavailable(f"SCAN did not end within {MAX_SCAN_PAGES} pages")
        return found

    async def _page(self, cursor: bytes, room: int) -> tuple[bytes, list[tuple[bytes, Any]]]:
        """One SCAN page from ``cursor``: the next cursor, and the PTTL of at most
        ``room`` of its keys that name a digest."""
        protocol = await self._commands.connection()
        reply = await protocol.command(
            b"SCAN", cursor, b"MATCH", KEY_PREFIX + b"*", b"COUNT", SCAN_COUNT
        )
        if not (
            isinstance(reply, list)
            and len(reply) == 2
            and isinstance(reply[0], bytes)
            and reply[0].isdigit()
            and isinstance(reply[1], list)
            and all(isinstance(key, bytes) for key in reply[1])
        ):
            raise StoreUnavailable(f"unexpected reply to SCAN: {reply!r:.80}")
        cursor, keys = reply
        named = [
            (key, digest)
            for key in keys
            if (digest := digest_of(key[len(KEY_PREFIX) :])) is not None
        ][:room]
        lives = await together([protocol.command(b"PTTL", key) for key, _ in named])
        return cursor, [(digest, left) for (_, digest), left in zip(named, lives, strict=True)]

    def unready(self) -> str | None:
        """For /readyz: a process starts serving once it has tried to catch up, so a
        balancer that waits for it sends it no id ended before it started; a Redis
        that fails does not keep it out (its ends stay where they happen)."""
        return None if self.tried else "catching up on sessions ended elsewhere"

    async def check(self) -> float:
        """What ``aigw doctor`` asks of the store: each command the processes send, on
        connections made as theirs are (TLS, AUTH, SELECT): SUBSCRIBE (each channel
        ``listen``ed to as well) on one; SET, PUBLISH,
        SCAN and PTTL on the other, for a probe end no session id has (the all-zero
        digest, 1 ms), then PING; its round trip in seconds.  Raises ``StoreUnavailable``
        or ``RedisError`` with what went wrong (an ACL refusing a command, for one)."""
        subscriber = await self._subscription.connection()
        for channel in self._channels:
            await subscriber.command(b"SUBSCRIBE", channel)
        protocol = await self._commands.connection()
        probe = bytes(32).hex().encode("ascii")
        await self._announce(probe + b" 1")
        await protocol.command(b"SCAN", b"0", b"MATCH", KEY_PREFIX + b"*", b"COUNT", b"1")
        await protocol.command(b"PTTL", KEY_PREFIX + probe)
        return await self._commands.round_trip()

    # -- waiting and failing ---------------------------------------------------------

    def _bounded(self, call: Coroutine[Any, Any, T] | Deferred[T]) -> Deferred[T]:
        """``call`` within one ``timeout``, whatever it waits for (a connection, replies)."""
        return ensureDeferred(call).addTimeout(self.timeout, self.clock)

    def _sleep(self, seconds: float, until_lost: bool) -> Deferred[None]:
        """Fires after ``seconds``, or sooner on a stop, or (``until_lost``) once the
        subscription's connection is lost."""
        sleeping: Deferred[None] = Deferred()
        timer = self.clock.callLater(seconds, sleeping.callback, None)
        sleeping.addBoth(lambda _: timer.cancel() if timer.active() else None)
        self._sleeping = (sleeping, until_lost)
        return sleeping

    def _connection_lost(self) -> None:
        if self._sleeping is not None and self._sleeping[1]:
            self._wake()

    def _wake(self) -> None:
        sleeping, self._sleeping = self._sleeping, None
        if sleeping is not None and not sleeping[0].called:
            sleeping[0].callback(None)

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        self._wake()
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        await self._tell_untold_at_last()
        await self.close()

    async def _tell_untold_at_last(self) -> None:
        """The ends Redis did not take, tried once more as the process stops, all within
        one ``timeout``: else they would die with it, and the other processes accept
        those session ids until they expire (basic/transports "Session Management": an
        ended session's id MUST be answered 404).  Those Redis still does not take are
        said in a warning: an operator knows which window opened, and for how long."""
        now = self.clock.seconds()
        messages = [announcement(ended, now) for ended in self._take_untold()]
        tries = [self._bounded(self._announce(m)) for m in messages if m is not None]
        if not tries:
            return
        outcomes: list[tuple[bool, Any]] = await DeferredList(tries, consumeErrors=True)
        lost = [failed.value for _, failed in outcomes if isinstance(failed, Failure)]
        if lost:
            self.log.warn(
                "stopping with {lost} session end(s) Redis did not take ({error}): other "
                "processes accept those session ids until they expire (sessions.ttl)",
                lost=len(lost),
                error=why(lost[-1] or StoreUnavailable()),
            )

    async def close(self) -> None:
        """Both connections closed, and the subscription's loop ended."""
        following, self._following = self._following, None
        await self._subscription.close()
        await self._commands.close()
        if following is not None and not following.called:
            following.cancel()  # what it waits for (a reply, a connection) ends now
        if following is not None:
            await following.addErrback(lambda failure: failure.trap(CancelledError))
