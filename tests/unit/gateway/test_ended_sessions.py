"""Sessions ended with DELETE are ended on every process (``gateway/ended_sessions.py``),
against a fake Redis in memory: SET with PX and PUBLISH on an end, the subscription
heard by the other processes, the SCAN catch-up of a process that subscribes later or
again, and a Redis that fails: counted, retried with a backoff, never waited on."""

from __future__ import annotations

import treq
from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.protocols.tls import TLSMemoryBIOFactory

from aigw.config import SessionsConfig
from aigw.config.redis import RedisAddress
from aigw.gateway import ended_sessions
from aigw.gateway.ended_sessions import (
    HEARTBEAT,
    KEY_PREFIX,
    EndedSessions,
)
from aigw.gateway.redis_client import MAX_REPLY_BYTES, RECONNECT_DELAY, encode
from aigw.protocol import jsonrpc
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import (
    BackendSession,
    Ended,
    SessionCodec,
    SessionNotFound,
    SessionState,
)
from tests.unit.gateway.fake_redis import FakeRedis, FakeRedisTestCase, bulk
from tests.unit.gateway.helpers import SHARED_KEY, GatewayTestCase
from tests.unit.memory import run
from tests.unit.upstream.private_ca import CA, PrivateCATestCase

TTL = 300.0
ISSUER = "https://as.example"
SEALER = Sealer(b"k" * 32)
#: ``sessions.redis_timeout`` unless a test sets its own.
TIMEOUT = SessionsConfig().redis_timeout


class EndedSessionsTests(FakeRedisTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.address = RedisAddress("127.0.0.1", self.port, db=1)

    def process(self) -> tuple[SessionCodec, EndedSessions]:
        """One aigw process's codec and its share of ended sessions, started."""
        codec = SessionCodec(SEALER, self.reactor, TTL)
        ended = EndedSessions(codec, self.address, self.reactor, TIMEOUT)
        ended.startService()
        self.addCleanup(lambda: self.network.run(ended.stopService()))
        return codec, ended

    def session(self, codec: SessionCodec) -> tuple[str, SessionState]:
        state = SessionState(
            ISSUER,
            "alice",
            self.reactor.seconds(),
            "2025-11-25",
            (BackendSession("a", "up-1", "2025-11-25", {}),),
        )
        return codec.issue(state), state

    def assertEnded(self, codec: SessionCodec, session_id: str) -> None:
        with self.assertRaises(SessionNotFound) as caught:
            codec.open(session_id, ISSUER, "alice")
        self.assertEqual(caught.exception.reason, "ended")

    @run
    async def test_an_end_is_stored_published_and_heard_by_every_process(self) -> None:
        (a, ended_a), (b, _), (c, _) = self.process(), self.process(), self.process()
        await self.network.settle()
        session_id, state = self.session(a)
        kept, _ = self.session(a)
        for codec in (a, b, c):
            codec.open(session_id, ISSUER, "alice")  # each has it in its memo of opened ids
        await self.network.sleep(10.0)
        ended = a.end(session_id, state)
        ended_a.announce(ended)
        await self.network.settle()
        for codec in (a, b, c):
            self.assertEnded(codec, session_id)
            self.assertEqual(codec.open(kept, ISSUER, "alice").subject, "alice")
        key = KEY_PREFIX + ended.digest.hex().encode()
        stored = next(c for c in self.redis.commands if c[0] == b"SET")
        self.assertEqual(stored, [b"SET", key, b"1", b"PX", b"%d" % ((TTL - 10.0) * 1000)])
        published = next(c for c in self.redis.commands if c[0] == b"PUBLISH")
        self.assertEqual(published[1:], [b"aigw:ended", ended.digest.hex().encode() + b" 290000"])
        self.assertEqual(self.redis.names().count(b"SUBSCRIBE"), 3)
        self.assertIn(b"SELECT", self.redis.names())  # the key's database, as the URL says
        # Once the id expires, nobody remembers it: Redis (PX) and the processes alike.
        await self.network.sleep(TTL)
        with self.assertRaises(SessionNotFound) as caught:
            b.open(session_id, ISSUER, "alice")
        self.assertEqual(caught.exception.reason, "expired")
        self.assertEqual(self.redis.live(), {})

    @run
    async def test_a_process_subscribing_later_catches_up_from_the_keys(self) -> None:
        a, ended_a = self.process()
        await self.network.settle()
        session_id, state = self.session(a)
        ended_a.announce(a.end(session_id, state))
        for n in range(30):  # other ended ids, and a key that is not one
            self.redis.keys[KEY_PREFIX + b"%064x" % n] = (b"1", self.reactor.seconds() + 60)
        self.redis.keys[KEY_PREFIX + b"not-hex"] = (b"1", None)
        self.redis.keys[b"aigw:rl:0:sub:ab"] = (b"1", None)
        await self.network.settle()
        late, ended_late = self.process()
        self.assertEqual(ended_late.unready(), "catching up on sessions ended elsewhere")
        await self.network.settle()
        self.assertIsNone(ended_late.unready())
        self.assertEnded(late, session_id)
        self.assertEqual(len(late._ended), 31)
        scans = [c for c in self.redis.commands if c[0] == b"SCAN"]
        self.assertEqual(scans[-1][2:], [b"MATCH", KEY_PREFIX + b"*", b"COUNT", b"1000"])

    @run
    async def test_the_catch_up_pages_and_stops_at_the_codecs_bound(self) -> None:
        self.patch(ended_sessions, "SCAN_COUNT", 7)
        self.patch(ended_sessions, "ENDED_MAX", 20)
        for n in range(50):
            self.redis.keys[KEY_PREFIX + b"%064x" % n] = (b"1", self.reactor.seconds() + 60)
        codec, _ = self.process()
        await self.network.settle()
        self.assertEqual(len(codec._ended), 20)
        self.assertEqual(self.redis.names().count(b"SCAN"), 3)  # 7 + 7 + 6 of them
        self.assertEqual(self.redis.names().count(b"PTTL"), 20)

    @run
    async def test_redis_down_ends_locally_counts_and_catches_up_once_back(self) -> None:
        a, ended_a = self.process()
        b, ended_b = self.process()
        await self.network.settle()
        self.redis.down = True
        self.redis.kill()
        await self.network.settle()
        session_id, state = self.session(a)
        ended_a.announce(a.end(session_id, state))  # returns at once: nothing waits on Redis
        await self.network.settle()
        self.assertEnded(a, session_id)
        self.assertEqual(b.open(session_id, ISSUER, "alice").subject, "alice")  # not told yet
        self.assertGreaterEqual(ended_a.failures.count, 2)  # the subscription, and the end
        self.assertGreaterEqual(ended_b.failures.count, 1)
        _, ended_c = self.process()  # started while Redis is down: ready once it tried
        await self.network.settle()
        self.assertIsNone(ended_c.unready())
        # Someone else told Redis meanwhile (here: by hand); once it is back, b catches up.
        other_id, other_state = self.session(a)
        told = a.end(other_id, other_state)
        self.redis.keys[KEY_PREFIX + told.digest.hex().encode()] = (b"1", told.expires)
        failures, subscribed = ended_b.failures.count, self.redis.names().count(b"SUBSCRIBE")
        await self.network.sleep(2 * RECONNECT_DELAY)  # the backoff grows: 1 s, then 2 s
        self.assertGreater(ended_b.failures.count, failures)
        self.assertEqual(self.redis.names().count(b"SUBSCRIBE"), subscribed)  # none got in
        self.redis.down = False
        await self.network.sleep(4 * RECONNECT_DELAY)
        self.assertEnded(b, other_id)
        self.assertEnded(b, session_id)  # a told it again once subscribed again
        self.assertEqual(len(ended_a._untold), 0)
        self.assertGreater(self.redis.names().count(b"SUBSCRIBE"), subscribed)

    @run
    async def test_a_silent_redis_is_noticed_by_the_heartbeat(self) -> None:
        _, ended = self.process()
        await self.network.settle()
        self.redis.silent = True
        with capturedLogs() as events:
            await self.network.sleep(HEARTBEAT + TIMEOUT + 0.1)
        self.assertEqual(ended.failures.count, 1)  # the PING got no answer: a new connection
        (warned,) = [e for e in events if e.get("doing") == "following ended sessions"]
        self.assertEqual(warned["error"], f"no reply within {TIMEOUT:g} s")  # said plainly
        self.redis.silent = False
        pings = self.redis.names().count(b"PING")
        await self.network.sleep(RECONNECT_DELAY + HEARTBEAT + 1.0)
        self.assertEqual(self.redis.names().count(b"SUBSCRIBE"), 2)  # on a new connection
        self.assertGreater(self.redis.names().count(b"PING"), pings)  # answered, this time
        self.assertEqual(ended.failures.count, 1)

    @run
    async def test_malformed_messages_are_ignored(self) -> None:
        codec, ended = self.process()
        await self.network.settle()
        subscribed = next(c for c in self.redis.connections if c.channels)
        assert subscribed.transport is not None
        with capturedLogs() as events:
            for payload in (b"x", b"%064x" % 1, b"%064x -5" % 1, b"zz" * 32 + b" 5", b"a b c"):
                subscribed.transport.write(b"*3\r\n$7\r\nmessage\r\n$10\r\naigw:ended\r\n")
                subscribed.transport.write(b"$%d\r\n%s\r\n" % (len(payload), payload))
            await self.network.settle()
        self.assertEqual(len(codec._ended), 0)
        self.assertEqual(ended.failures.count, 5)  # counted; logged once (10 s apart at most)
        warned = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual([(e["count"], e["doing"]) for e in warned], [(1, "hearing")])
        self.assertIn(subscribed, self.redis.connections)  # still subscribed

    def publish(self, channel: bytes, payload: bytes) -> None:
        """``payload`` on ``channel``, as anyone who can PUBLISH on this Redis sends it."""
        for connection in self.redis.connections:
            if channel in connection.channels:
                assert connection.transport is not None
                connection.transport.write(encode(b"message", channel, payload))

    @run
    async def test_hostile_notes_are_ignored_counted_and_the_subscription_lives(self) -> None:
        """Any bytes on ``aigw:ended``: each ignored and counted, one warning line for
        them all, no traceback, and the next good note is heard on the same connection."""
        codec, ended = self.process()
        await self.network.settle()
        digest = b"%064x" % 1
        hostile = {
            "a lifetime of 5000 digits (int() refuses it)": digest + b" " + b"9" * 5000,
            "a lifetime of 400 digits (beyond a float)": digest + b" " + b"9" * 400,
            "hex with whitespace fromhex skips": b"\t0" * 32 + b" 5000",
            "hex of non-ASCII bytes": b"\xff" * 64 + b" 5000",
            "a non-ASCII digit": digest + b" \xd9\xa5",
            "too many fields": digest + b" 5 5",
            "nothing": b"",
            "60 KiB of garbage": bytes(range(256)) * 240,
        }
        subscribed = next(c for c in self.redis.connections if c.channels)
        with capturedLogs() as events:
            for payload in hostile.values():
                self.publish(ended_sessions.CHANNEL, payload)
            await self.network.settle()
            self.assertEqual(ended.failures.count, len(hostile))
            self.assertEqual(len(codec._ended), 0)
            self.publish(ended_sessions.CHANNEL, digest + b" 5000")
            await self.network.settle()
        self.assertEqual(len(codec._ended), 1)
        self.assertIn(subscribed, self.redis.connections)
        self.assertEqual([e["log_level"] for e in events if "doing" in e], [LogLevel.warn])
        self.assertFalse([e for e in events if "log_failure" in e])

    @run
    async def test_a_note_over_the_reply_bound_is_skipped_counted_and_the_subscription_lives(
        self,
    ) -> None:
        """Notes longer than ``MAX_REPLY_BYTES``, coming as TCP reads them (64 KiB at a
        time): each skipped as it comes (the subscription's buffer stays bounded),
        counted, logged once, no traceback; the connection is kept (before, it was cut
        and made again after ``RECONNECT_DELAY``, losing the notes sent meanwhile), and
        the note sent right after is heard on it."""
        codec, ended = self.process()
        await self.network.settle()
        [subscribed] = [c for c in self.redis.connections if c.channels]
        assert subscribed.transport is not None
        frame = encode(b"message", ended_sessions.CHANNEL, b"x" * 2 * MAX_REPLY_BYTES)
        frame += encode(b"message", ended_sessions.CHANNEL, b"y" * (MAX_REPLY_BYTES - 20))
        frame += encode(b"message", ended_sessions.CHANNEL, b"%064x 5000" % 1)
        with capturedLogs() as events:
            for start in range(0, len(frame), 65_536):
                subscribed.transport.write(frame[start : start + 65_536])
                await self.network.settle()
        self.assertEqual(ended.failures.count, 2)
        self.assertEqual(len(codec._ended), 1)
        self.assertEqual(self.redis.names().count(b"SUBSCRIBE"), 1)
        self.assertIn(subscribed, self.redis.connections)
        [warned] = [e for e in events if e.get("doing") == "hearing"]
        self.assertIn(f"skipped a note of {2 * MAX_REPLY_BYTES} bytes", warned["error"])
        self.assertFalse([e for e in events if "log_failure" in e])

    @run
    async def test_a_long_note_not_ended_by_crlf_still_cuts_the_connection(self) -> None:
        """Skipping keeps the framing: a payload whose length is a lie is not RESP, and
        the connection is cut (counted), made again after ``RECONNECT_DELAY``."""
        _, ended = self.process()
        await self.network.settle()
        [subscribed] = [c for c in self.redis.connections if c.channels]
        assert subscribed.transport is not None
        frame = encode(b"message", ended_sessions.CHANNEL, b"x" * 2 * MAX_REPLY_BYTES)
        subscribed.transport.write(frame[:-2] + b"xx")
        await self.network.settle()
        self.assertEqual(ended.failures.count, 1)
        self.assertNotIn(subscribed, self.redis.connections)
        await self.network.sleep(RECONNECT_DELAY + 0.1)
        self.assertEqual(self.redis.names().count(b"SUBSCRIBE"), 2)

    @run
    async def test_a_reader_that_raises_is_counted_and_the_subscription_lives(self) -> None:
        """A channel's reader that did not foresee a note: counted and logged as a
        malformed note (its exception named, no traceback), the connection kept."""
        codec = SessionCodec(SEALER, self.reactor, TTL)
        ended = EndedSessions(codec, self.address, self.reactor, TIMEOUT)
        ended.listen(b"aigw:other", lambda payload: [][len(payload)])
        ended.startService()
        self.addCleanup(lambda: self.network.run(ended.stopService()))
        await self.network.settle()
        subscribed = next(c for c in self.redis.connections if c.channels)
        with capturedLogs() as events:
            self.publish(b"aigw:other", b"boom")
            await self.network.settle()
        self.assertEqual(ended.failures.count, 1)
        [warned] = [e for e in events if "doing" in e]
        self.assertIn("IndexError", warned["error"])
        self.assertFalse([e for e in events if "log_failure" in e])
        self.assertIn(subscribed, self.redis.connections)

    @run
    async def test_a_scan_that_never_ends_is_given_up_and_counted(self) -> None:
        """A server whose SCAN cursor never comes back to 0: the catch-up stops after
        ``MAX_SCAN_PAGES`` pages, counted; the process is ready all the same."""
        self.patch(ended_sessions, "MAX_SCAN_PAGES", 5)
        self.redis.scan = lambda command: b"*2\r\n" + bulk(b"7") + b"*0\r\n"  # type: ignore[method-assign]
        _, ended = self.process()
        await self.network.settle()
        self.assertEqual(self.redis.names().count(b"SCAN"), 5)
        self.assertEqual(ended.failures.count, 1)
        self.assertIsNone(ended.unready())

    @run
    async def test_replies_of_the_wrong_shape_fail_the_catch_up_counted(self) -> None:
        """SCAN and PTTL answered with what Redis never sends: counted as a failure of
        following (no traceback), nothing remembered; a PTTL of any integer is bounded."""
        replies = [
            b":5\r\n",
            b"*1\r\n$1\r\n0\r\n",
            b"*2\r\n:0\r\n*0\r\n",
            b"*2\r\n$1\r\nx\r\n*0\r\n",
            b"*2\r\n$1\r\n0\r\n*1\r\n:5\r\n",
            b"*2\r\n$1\r\n0\r\n$3\r\nabc\r\n",
        ]
        for reply in replies:
            with self.subTest(reply):
                self.redis.scan = lambda command, reply=reply: reply  # type: ignore[method-assign]
                codec, ended = self.process()
                with capturedLogs() as events:
                    await self.network.settle()
                self.assertEqual((ended.failures.count, len(codec._ended)), (1, 0))
                self.assertFalse([e for e in events if "log_failure" in e])
        del self.redis.scan
        self.redis.keys[KEY_PREFIX + b"%064x" % 1] = (b"1", None)
        answer = self.redis.answer
        self.redis.answer = lambda c, command: (  # type: ignore[method-assign]
            b":" + b"9" * 400 + b"\r\n" if command[0] == b"PTTL" else answer(c, command)
        )
        codec, ended = self.process()
        await self.network.settle()
        self.assertEqual((ended.failures.count, len(codec._ended)), (0, 1))  # within the ttl

    @run
    async def test_stopping_closes_both_connections(self) -> None:
        codec = SessionCodec(SEALER, self.reactor, TTL)
        ended = EndedSessions(codec, self.address, self.reactor, TIMEOUT)
        ended.startService()
        session_id, state = self.session(codec)
        ended.announce(codec.end(session_id, state))
        await self.network.settle()
        self.assertEqual(self.network.open_connections(self.address.port), 2)
        await ended.stopService()
        await self.network.settle()
        self.assertEqual(self.network.open_connections(self.address.port), 0)
        ended.announce(codec.end(*self.session(codec)))  # stopped: nothing is sent
        await self.network.settle()
        self.assertEqual(self.network.open_connections(self.address.port), 0)

    async def stopped_by_hand_with_redis_down(self) -> tuple[SessionCodec, EndedSessions]:
        """A process the test stops itself, subscribed, then Redis down."""
        codec = SessionCodec(SEALER, self.reactor, TTL)
        ended = EndedSessions(codec, self.address, self.reactor, TIMEOUT)
        ended.startService()
        await self.network.settle()
        self.redis.down = True
        self.redis.kill()
        await self.network.settle()
        return codec, ended

    @run
    async def test_an_untold_end_is_told_at_the_stop_once_redis_is_back(self) -> None:
        """A DELETE served while Redis was down, Redis back before the subscription's
        backoff tried again, then the process stopped: its end is told on the way out,
        not lost with the process, and a process started later answers the id 404."""
        codec, ended = await self.stopped_by_hand_with_redis_down()
        session_id, state = self.session(codec)
        ended.announce(codec.end(session_id, state))
        await self.network.sleep(TIMEOUT + 0.1)
        self.assertEqual(len(ended._untold), 1)
        self.redis.down = False
        sets = self.redis.names().count(b"SET")
        await ended.stopService()
        self.assertEqual(self.redis.names().count(b"SET"), sets + 1)
        later, _ = self.process()
        await self.network.settle()
        self.assertEnded(later, session_id)

    @run
    async def test_an_end_still_untold_at_the_stop_is_warned_of_within_the_bound(self) -> None:
        codec, ended = await self.stopped_by_hand_with_redis_down()
        for _ in range(2):
            ended.announce(codec.end(*self.session(codec)))
        await self.network.sleep(TIMEOUT + 0.1)
        started = self.reactor.seconds()
        with capturedLogs() as events:
            await ended.stopService()
        self.assertLessEqual(self.reactor.seconds() - started, TIMEOUT + 0.1)
        (warned,) = [e for e in events if "Redis did not take" in e.get("log_format", "")]
        self.assertEqual((warned["log_level"], warned["lost"]), (LogLevel.warn, 2))
        self.assertEqual(self.network.open_connections(self.address.port), 0)

    def test_stopping_does_not_wait_for_a_silent_redis(self) -> None:
        self.redis.silent = True
        codec = SessionCodec(SEALER, self.reactor, TTL)
        ended = EndedSessions(codec, self.address, self.reactor, TIMEOUT)
        ended.startService()
        self.network.run(self.network.settle())  # connected, SELECT sent, no answer
        self.assertEqual(self.redis.names(), [b"SELECT"])
        self.network.run(ended.stopService(), within=0.0)
        self.network.run(self.network.settle(), within=0.0)
        self.assertEqual(self.network.open_connections(self.address.port), 0)


class OneBoundTests(FakeRedisTestCase):
    """Each call within ``sessions.redis_timeout``, making the connection included: one
    deadline, not one for connecting and another for the command."""

    def store(self, timeout: float) -> EndedSessions:
        codec = SessionCodec(SEALER, self.reactor, TTL)
        address = RedisAddress("127.0.0.1", self.port, db=1)  # connecting: SELECT answered
        ended = EndedSessions(codec, address, self.reactor, timeout)
        self.addCleanup(lambda: self.network.run(ended.close()))
        return ended

    async def failed_after(self, ended: EndedSessions) -> float:
        """Seconds of fake time until ``ended``'s PUBLISH failed with a timeout."""
        started = self.reactor.seconds()
        with self.assertRaises(defer.TimeoutError):
            await ended.command(b"PUBLISH", b"aigw:x", b"m")
        return float(self.reactor.seconds() - started)

    @run
    async def test_a_silent_redis_fails_the_call_at_the_configured_bound(self) -> None:
        self.redis.silent = True
        self.assertAlmostEqual(await self.failed_after(self.store(2.0)), 2.0)
        self.assertEqual(self.redis.names(), [b"SELECT"])  # connected; nothing answered

    @run
    async def test_connecting_and_the_command_share_one_bound(self) -> None:
        """Each reply takes 1 s: SELECT answered at 1 s, PUBLISH's would be at 2 s.  One
        1.5 s bound fails the call at 1.5 s (a bound each would have let it through)."""
        self.redis.delay = 1.0
        self.assertAlmostEqual(await self.failed_after(self.store(1.5)), 1.5)
        self.assertEqual(self.redis.names(), [b"SELECT", b"PUBLISH"])
        # Room for both replies: the call succeeds.
        self.assertEqual(await self.store(2.5).command(b"PUBLISH", b"aigw:x", b"m"), 0)

    @run
    async def test_a_command_past_its_bound_drops_its_connection(self) -> None:
        """A server trickling a reply past the bound: the call fails at the bound and its
        connection is cut (kept, the trickle would hold it for ever); the next command
        connects again and is answered."""
        ended = self.store(1.0)
        self.assertEqual(await ended.command(b"PING"), "PONG")
        self.redis.silent = True
        calling = defer.ensureDeferred(ended.command(b"PUBLISH", b"aigw:x", b"m"))
        [server] = self.redis.connections
        assert server.transport is not None
        server.transport.write(b"$1000\r\n")  # the reply, begun, then trickling
        for _ in range(11):
            await self.network.sleep(0.1)
            server.transport.write(b"x")
        with self.assertRaises(defer.TimeoutError):
            await calling
        await self.network.settle()
        self.assertEqual(self.network.open_connections(self.port), 0)
        self.redis.silent = False
        self.assertEqual(await ended.command(b"PUBLISH", b"aigw:x", b"m"), 0)
        self.assertEqual(
            self.redis.names(), [b"SELECT", b"PING", b"PUBLISH", b"SELECT", b"PUBLISH"]
        )

    @run
    async def test_an_end_told_past_the_bound_is_reported_as_its_timeout(self) -> None:
        """SET and PUBLISH sent together, neither answered: the bound cancels both and
        cuts the connection; the warning names the bound, not the cut it caused."""
        ended = self.store(1.0)
        ended.startService()
        self.addCleanup(lambda: self.network.run(ended.stopService()))
        await self.network.settle()
        self.redis.silent = True
        with capturedLogs() as events:
            ended.announce(Ended(bytes(32), self.reactor.seconds() + 60))
            await self.network.sleep(1.1)
        [warned] = [e for e in events if e.get("doing") == "telling an end"]
        self.assertEqual(warned["error"], "no reply within 1 s")
        self.assertEqual(self.network.open_connections(self.port), 1)  # the subscription's

    @run
    async def test_the_subscription_is_made_within_one_bound(self) -> None:
        """Connecting and SUBSCRIBE too: 2 s of replies against a 1.5 s bound is a
        failure of following, counted."""
        self.redis.delay = 1.0
        ended = self.store(1.5)
        ended.startService()
        self.addCleanup(lambda: self.network.run(ended.stopService()))
        await self.network.sleep(1.6)
        self.assertEqual(ended.failures.count, 1)
        self.assertNotIn(b"SCAN", self.redis.names())  # never caught up on that attempt


class TwoProcessTests(GatewayTestCase):
    """Two GatewayServices of one deployment (one key, one ``sessions.redis_url``)."""

    @run
    async def test_a_session_deleted_on_one_process_is_404_on_the_other(self) -> None:
        redis = FakeRedis(self.reactor)
        shared = SessionsConfig(
            secret=SHARED_KEY, redis_url=RedisAddress("127.0.0.1", self.network.serve(redis))
        )
        await self.start_gateway(sessions=shared)
        first = self.url
        other = self.start_peer(1976)
        await self.network.settle()
        ended, kept = await self.initialize(), await self.initialize()
        self.url = "http://127.0.0.1:1976/mcp"
        await self.call(ended, "ping")
        self.url = first
        response = await self.http.delete(self.url, headers={"Mcp-Session-Id": [ended]})
        await treq.content(response)
        self.assertEqual(response.code, 204)
        await self.network.settle()
        self.url = "http://127.0.0.1:1976/mcp"
        ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
        response, body = await self.post(ping, ended, {"MCP-Protocol-Version": "2025-11-25"})
        self.assertEqual(response.code, 404, body)
        self.assertEqual(body["error"]["code"], jsonrpc.SESSION_NOT_FOUND, body)
        await self.call(kept, "ping")
        # Each process: aigw:ended and aigw:stream-probe (shared_stream_probes.py).
        self.assertEqual(redis.names().count(b"SUBSCRIBE"), 2 * 2)
        for process in (self.service, other):
            assert process.ended_sessions is not None
            self.assertEqual(process.ended_sessions.failures.count, 0)


class OverTLSTests(PrivateCATestCase):
    """``rediss://``: both connections speak verified TLS, trusting ``redis_ca_file``;
    a server of another CA is a failure counted, never a plaintext fallback."""

    def start(self, ca: CA) -> tuple[SessionCodec, EndedSessions, FakeRedis]:
        redis = FakeRedis(self.reactor)
        tls = TLSMemoryBIOFactory(ca.certificate.options(), False, redis, clock=self.reactor)
        address = RedisAddress("127.0.0.1", self.network.serve(tls), tls=True)
        codec = SessionCodec(SEALER, self.reactor, TTL)
        ended = EndedSessions(codec, address, self.reactor, TIMEOUT, ca_file=self.backend_ca.file)
        ended.startService()
        self.addCleanup(lambda: self.network.run(ended.stopService()))
        return codec, ended, redis

    @run
    async def test_a_server_the_ca_file_vouches_for_is_followed(self) -> None:
        codec, ended, redis = self.start(self.backend_ca)
        await self.network.settle()
        self.assertEqual(redis.names(), [b"SUBSCRIBE", b"SCAN"])
        state = SessionState(ISSUER, "alice", self.reactor.seconds(), "2025-11-25", ())
        session_id = codec.issue(state)
        ended.announce(codec.end(session_id, state))
        await self.network.settle()
        self.assertEqual(redis.names()[2:], [b"SET", b"PUBLISH"])
        self.assertEqual(ended.failures.count, 0)

    @run
    async def test_a_server_of_another_ca_is_a_failure_and_told_nothing(self) -> None:
        _, ended, redis = self.start(self.server_ca)
        await self.network.settle()
        self.assertEqual(ended.failures.count, 1)
        self.assertIsNone(ended.unready())  # tried: the process serves all the same
        self.assertEqual(redis.commands, [])
