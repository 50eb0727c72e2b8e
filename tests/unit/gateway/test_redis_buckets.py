"""The Redis bucket store against a fake RESP2 server in memory (iosim): the script by
``EVALSHA`` then ``EVAL`` on ``NOSCRIPT``, bounded waits, fail-open and fail-closed, and
in-flight leases shared by two processes' stores (taken, released, renewed, expired)."""

from __future__ import annotations

from typing import Any

from twisted.protocols.tls import TLSMemoryBIOFactory

from aigw.config.limits import LimitRule, LimitsConfig, OnRedisError, Rate
from aigw.config.redis import RedisAddress
from aigw.gateway import redis_buckets
from aigw.gateway.limits import StreamLimitReached, StreamLimits, UserKey
from aigw.gateway.ratelimit import (
    NO_PERMIT,
    Bucket,
    Limiter,
    Permit,
    RateLimited,
    Slot,
    Taken,
)
from aigw.gateway.redis_buckets import LEASE_SHA, TAKE_SHA, Lease, RedisBuckets
from aigw.gateway.redis_client import RECONNECT_DELAY
from aigw.gateway.store_failures import StoreUnavailable
from aigw.principal import Principal
from aigw.web.respond import stream_limit_refusal
from tests.unit.gateway.fake_redis import FakeRedis, FakeRedisTestCase
from tests.unit.memory import run
from tests.unit.upstream.private_ca import CA, PrivateCATestCase

ALICE = Principal("https://as", "alice", "app", frozenset(), {}, None, None)
BUCKET = Bucket("aigw:rl:0:sub:ab", 5.0, 5)


class RedisBucketsTests(FakeRedisTestCase):
    def store(self, port: int | None = None, **address: Any) -> RedisBuckets:
        where = RedisAddress("127.0.0.1", port or self.port, **address)
        store = RedisBuckets(where, self.reactor, 0.05)
        self.addCleanup(lambda: self.network.run(store.close()))
        return store

    @run
    async def test_noscript_falls_back_to_eval_once(self) -> None:
        store = self.store(db=2, password="pw")
        self.assertEqual(await store.take([BUCKET]), Taken(None))
        self.redis.reply = b"*2\r\n:1\r\n:150\r\n"
        self.assertEqual(await store.take([BUCKET]), Taken(0, 0.15))
        names = [c[0] for c in self.redis.commands]
        self.assertEqual(names, [b"AUTH", b"SELECT", b"EVALSHA", b"EVAL", b"EVALSHA"])
        evalsha = self.redis.commands[2]
        # One bucket, no lease (no bound applies), 30 s leases, the bucket's rate and size.
        argv = [b"1", b"", b"30000", b"5.0", b"5"]
        self.assertEqual(evalsha[1:], [TAKE_SHA, b"1", BUCKET.key.encode(), *argv])

    @run
    async def test_a_silent_redis_is_unavailable_within_the_timeout(self) -> None:
        store = self.store()
        self.redis.silent = True
        started = self.reactor.seconds()
        with self.assertRaises(StoreUnavailable) as caught:
            await store.take([BUCKET])
        self.assertAlmostEqual(self.reactor.seconds() - started, 0.05)
        self.assertEqual(str(caught.exception), "no answer from Redis within 0.05 s")
        self.redis.silent = False  # the next request opens a fresh connection
        self.assertEqual(await store.take([BUCKET]), Taken(None))

    @run
    async def test_unreachable_redis_is_not_retried_before_the_delay(self) -> None:
        store = self.store(port=1)  # nothing listens there
        attempts: list[None] = []
        connect = store._connect

        def counted() -> Any:
            attempts.append(None)
            return connect()

        store._connect = counted
        for _ in range(3):
            with self.assertRaises(StoreUnavailable):
                await store.take([BUCKET])
        self.assertEqual(len(attempts), 1)  # one attempt, shared, then none for a while
        await self.network.sleep(RECONNECT_DELAY + 1.0)
        with self.assertRaises(StoreUnavailable):
            await store.take([BUCKET])
        self.assertEqual(len(attempts), 2)

    @run
    async def test_fail_open_allows_and_counts(self) -> None:
        self.redis.silent = True
        limiter = self.limiter("open")
        self.assertIsInstance(await limiter.enter(ALICE), Permit)
        self.assertIsInstance(await limiter.enter(ALICE), Permit)
        self.assertEqual(limiter.store_failures.count, 2)

    @run
    async def test_fail_closed_refuses_with_503(self) -> None:
        self.redis.silent = True
        limiter = self.limiter("closed")
        with self.assertRaises(RateLimited) as caught:
            await limiter.enter(ALICE)
        refused = caught.exception
        self.assertEqual((refused.status, refused.limit), (503, "limits.redis_url"))
        self.assertEqual(limiter.store_failures.count, 1)

    @run
    async def test_a_refusal_from_redis_names_the_rule(self) -> None:
        self.redis.reply = b"*2\r\n:1\r\n:2001\r\n"
        limiter = self.limiter("open", LimitRule(per="sub", rate=Rate(1, 3.0)))
        with self.assertRaises(RateLimited) as caught:
            await limiter.enter(ALICE)
        self.assertEqual((caught.exception.limit, caught.exception.retry_after), ("sub:0", 3))

    @run
    async def test_replies_the_script_cannot_give_are_a_failure_of_the_store(self) -> None:
        """A reply naming no rule of the request (an IndexError, a 500, before), a wrong
        one, or a wait the bucket's rate cannot need: ``StoreUnavailable``, so
        ``on_redis_error`` decides: refused with 503 (``closed``), let through (``open``),
        counted either way."""
        hostile = {
            "an index past the request's keys": b"*2\r\n:3\r\n:0\r\n",
            "a negative index": b"*2\r\n:-1\r\n:0\r\n",
            "a negative wait": b"*2\r\n:1\r\n:-5\r\n",
            "a wait past one token's refill (200 ms at 5/s)": b"*2\r\n:1\r\n:202\r\n",
            "a huge wait": b"*2\r\n:1\r\n:" + b"9" * 300 + b"\r\n",
            "a bound's refusal with a wait": b"*2\r\n:2\r\n:5\r\n",
            "strings": b"*2\r\n$1\r\n1\r\n$1\r\n0\r\n",
            "nil": b"$-1\r\n",
            "three items": b"*3\r\n:0\r\n:0\r\n:0\r\n",
            "an error": b"-ERR user_script:1: Script attempted to access nonexistent global\r\n",
        }
        rules = (LimitRule(per="sub", rate=Rate(5, 1.0)), IN_FLIGHT_2)
        for name, reply in hostile.items():
            with self.subTest(name):
                self.redis.reply = reply
                closed = self.limiter("closed", *rules)
                with self.assertRaises(RateLimited) as caught:
                    await closed.enter(ALICE)
                self.assertEqual(caught.exception.status, 503)
                opened = self.limiter("open", *rules)
                self.assertIsInstance(await opened.enter(ALICE), Permit)
                self.assertEqual((closed.store_failures.count, opened.store_failures.count), (1, 1))

    def limiter(self, on_error: OnRedisError, *rules: LimitRule, ttl: float = 30.0) -> Limiter:
        """A limiter on its own store (one process's), wired as ``build_limiter`` does."""
        config = LimitsConfig(
            on_redis_error=on_error, rules=rules or (LimitRule(per="sub", rate=Rate(5, 1.0)),)
        )
        limiter = Limiter(config, self.reactor)
        store = self.store()
        store.lease_ttl, store.failures = ttl, limiter.store_failures
        limiter.store = store
        return limiter


IN_FLIGHT_2 = LimitRule(per="sub", in_flight=2)


class LeaseTests(RedisBucketsTests):
    """``in_flight`` with ``limits.redis_url``: each limiter is one process's."""

    def lease_calls(self) -> list[list[bytes]]:
        return [c for c in self.redis.commands if c[0] == b"EVALSHA" and c[1] == LEASE_SHA]

    @run
    async def test_a_bound_holds_across_processes_and_a_release_frees_a_place(self) -> None:
        one, two = self.limiter("open", IN_FLIGHT_2), self.limiter("open", IN_FLIGHT_2)
        first = await one.enter(ALICE)
        second = await two.enter(ALICE)
        self.assertIsInstance(first, Lease)
        with self.assertRaises(RateLimited) as caught:
            await one.enter(ALICE)
        refused = caught.exception
        self.assertEqual((refused.status, refused.limit, refused.retry_after), (429, "sub:0", 1))
        self.assertIn("at most 2 per sub", refused.message)
        bob = await two.enter(Principal("https://as", "bob", "app", frozenset(), {}, None, None))
        first.release()
        first.release()  # once
        await self.network.settle()
        self.assertEqual(len(self.lease_calls()), 1)
        (release,) = self.lease_calls()
        self.assertEqual((release[2], release[4]), (b"1", b"0"))  # one key, removed
        third = await two.enter(ALICE)
        self.assertEqual(self.redis.held(), 3)
        for permit in (second, third, bob):
            permit.release()
        await self.network.settle()
        self.assertEqual(self.redis.held(), 0)

    @run
    async def test_leases_are_renewed_while_held_and_expire_once_their_process_is_gone(
        self,
    ) -> None:
        one, two = self.limiter("open", IN_FLIGHT_2, ttl=3.0), self.limiter("open", IN_FLIGHT_2)
        held = [await one.enter(ALICE), await one.enter(ALICE)]
        await self.network.sleep(10.0)  # three times the lease: renewed every second
        self.assertEqual(self.redis.held(), 2)
        renewals = self.lease_calls()
        self.assertGreaterEqual(len(renewals), 9)
        self.assertEqual(renewals[0][2], b"2")  # both leases in one call
        self.assertEqual(renewals[0][5], b"3000")
        self.assertEqual(len(renewals[0]), 3 + 2 + 1 + 2)
        with self.assertRaises(RateLimited):
            await two.enter(ALICE)
        # The process dies: nobody renews nor releases its leases.
        assert isinstance(one.store, RedisBuckets)
        one.store.leases.clear()
        await self.network.sleep(3.0)
        self.assertIsInstance(await two.enter(ALICE), Lease)
        del held

    @run
    async def test_renewals_and_the_last_release_go_in_batches(self) -> None:
        self.patch(redis_buckets, "RENEW_BATCH", 2)
        limiter = self.limiter("open", LimitRule(per="sub", in_flight=5), ttl=3.0)
        for _ in range(3):
            await limiter.enter(ALICE)
        await self.network.sleep(1.0)  # one renewal: 3 leases, 2 at a time
        await self.network.settle()
        self.assertEqual([c[2] for c in self.lease_calls()], [b"2", b"1"])
        await limiter.close()
        self.assertEqual([c[2] for c in self.lease_calls()][2:], [b"2", b"1"])
        self.assertEqual(self.redis.held(), 0)

    @run
    async def test_no_round_trip_when_no_bound_applies(self) -> None:
        limiter = self.limiter("open", LimitRule(per="backend", match="kiwi", in_flight=1))
        permit = await limiter.enter(ALICE)  # backend rules count calls once routed only
        self.assertIs(permit, NO_PERMIT)
        self.assertIs(await limiter.route(ALICE, "other", "other__t"), NO_PERMIT)
        permit.release()
        await self.network.settle()
        self.assertEqual(self.redis.commands, [])
        routed = await limiter.route(ALICE, "kiwi", "kiwi__t")
        self.assertIsInstance(routed, Lease)
        self.assertEqual(len(self.redis.commands), 2)  # EVALSHA, then EVAL (NOSCRIPT)

    @run
    async def test_buckets_and_bounds_are_taken_in_one_call(self) -> None:
        limiter = self.limiter("open", LimitRule(per="sub", rate=Rate(5, 1.0)), IN_FLIGHT_2)
        await limiter.enter(ALICE)
        await limiter.enter(ALICE)
        calls = [c for c in self.redis.commands if c[0] == b"EVALSHA" and c[1] == TAKE_SHA]
        self.assertEqual(len(calls), 2)
        self.assertEqual(calls[1][2], b"2")  # two keys: the bucket's and the bound's
        number, member, ttl, rate = calls[1][5:9]
        self.assertEqual((number, ttl, rate), (b"1", b"30000", b"5.0"))
        self.assertRegex(member, rb"^[0-9a-f]{16}:2$")  # this store's, its second
        self.assertEqual(calls[1][-1], b"2")  # the bound

    @run
    async def test_a_release_that_fails_is_reported_and_left_to_expire(self) -> None:
        limiter = self.limiter("closed", IN_FLIGHT_2, ttl=3.0)
        permit = await limiter.enter(ALICE)
        self.redis.silent = True
        permit.release()  # returns at once, raises nothing
        await self.network.sleep(0.1)
        self.assertEqual(limiter.store_failures.count, 1)
        self.redis.silent = False
        await self.network.sleep(3.0)
        self.assertEqual(self.redis.held(), 0)  # expired in Redis, not renewed
        self.assertEqual(len(self.lease_calls()), 1)

    @run
    async def test_redis_down_with_a_bound_fails_open_or_closed(self) -> None:
        self.redis.silent = True
        opened, closed = self.limiter("open", IN_FLIGHT_2), self.limiter("closed", IN_FLIGHT_2)
        for _ in range(3):  # no bound while Redis cannot count: allowed, nothing to release
            self.assertIs(await opened.enter(ALICE), NO_PERMIT)
        with self.assertRaises(RateLimited) as caught:
            await closed.enter(ALICE)
        self.assertEqual(
            (caught.exception.status, caught.exception.limit), (503, "limits.redis_url")
        )
        self.assertEqual((opened.store_failures.count, closed.store_failures.count), (3, 1))

    @run
    async def test_closing_gives_the_places_back(self) -> None:
        limiter = self.limiter("open", IN_FLIGHT_2)
        permit = await limiter.enter(ALICE)
        await limiter.enter(ALICE)
        await limiter.close()
        self.assertEqual(self.redis.held(), 0)
        (given_back,) = self.lease_calls()
        self.assertEqual(given_back[2], b"2")  # both leases, in one call
        permit.release()  # after close: nothing more is sent
        await self.network.settle()
        self.assertEqual(len(self.lease_calls()), 1)
        with self.assertRaises(StoreUnavailable):
            await limiter.store.take([], [Slot("k", 1)])


class StreamLeaseTests(RedisBucketsTests):
    """``sessions.max_streams_per_user`` and one GET stream per session, with
    ``limits.redis_url``: two processes' stream limits over one Redis."""

    def streams(self, on_error: OnRedisError = "open", total: int = 10) -> StreamLimits:
        limiter = self.limiter(on_error)
        return StreamLimits(total, 2, lambda: limiter)

    async def refused(
        self, limits: StreamLimits, user: UserKey, session: str | None = None
    ) -> StreamLimitReached:
        with self.assertRaises(StreamLimitReached) as caught:
            await limits.acquire(user, session)
        return caught.exception

    @run
    async def test_a_sessions_get_stream_and_a_users_streams_are_bounded_in_all(self) -> None:
        one, two = self.streams(), self.streams()
        alice = ("https://as", "alice")
        get = await one.acquire(alice, "s1")
        self.assertIsInstance(get.permit, Lease)
        second_get = await self.refused(two, alice, "s1")  # on another process
        self.assertEqual((second_get.status, second_get.key), (409, "session"))
        listen = await two.acquire(alice)
        user = await self.refused(one, alice)  # one on each process: 2 in all
        self.assertEqual((user.status, user.key), (429, "sessions.max_streams_per_user"))
        self.assertEqual((one.total, two.total), (1, 1))  # a refusal kept no count
        await two.acquire(("https://as", "bob"))
        get.release()
        get.release()
        await self.network.settle()
        again = await two.acquire(alice, "s1")
        self.assertEqual((one.total, two.total), (0, 3))
        for slot in (listen, again):
            slot.release()
        await self.network.settle()
        self.assertEqual(self.redis.held(), 1)  # bob's

    @run
    async def test_the_process_bound_is_checked_here_first(self) -> None:
        limits = self.streams(total=1)
        await limits.acquire(("https://as", "alice"))
        sent = len(self.redis.commands)
        total = await self.refused(limits, ("https://as", "bob"))
        self.assertEqual((total.status, total.key), (503, "server.max_streams"))
        self.assertEqual(len(self.redis.commands), sent)

    @run
    async def test_redis_down_falls_back_to_this_process_or_refuses(self) -> None:
        self.redis.silent = True
        alice = ("https://as", "alice")
        opened, other = self.streams("open"), self.streams("open")
        await opened.acquire(alice, "s1")
        here = await self.refused(opened, alice, "s1")  # this process's counts decide
        self.assertEqual(here.status, 409)
        await other.acquire(alice, "s1")  # which cannot see the other process's stream
        closed = await self.refused(self.streams("closed"), alice)
        self.assertEqual((closed.status, closed.key), (503, "limits.redis_url"))
        refusal = stream_limit_refusal(closed)
        self.assertEqual(refusal.to_error()["data"], {"limit": "limits.redis_url"})
        self.assertEqual(refusal.headers, {b"Retry-After": b"10"})


class RedisOverTLSTests(PrivateCATestCase):
    """``rediss://``: verified TLS to the server, trusting only ``redis_ca_file`` when
    given; a certificate of another CA makes the store unavailable (closed or open is
    then the limiter's ``on_redis_error``), never a plaintext fallback."""

    def store(self, ca: CA) -> tuple[RedisBuckets, FakeRedis]:
        redis = FakeRedis(self.reactor)
        tls = TLSMemoryBIOFactory(ca.certificate.options(), False, redis, clock=self.reactor)
        address = RedisAddress("127.0.0.1", self.network.serve(tls), tls=True)
        store = RedisBuckets(address, self.reactor, 0.05, ca_file=self.backend_ca.file)
        self.addCleanup(lambda: self.network.run(store.close()))
        return store, redis

    @run
    async def test_a_server_the_ca_file_vouches_for_gets_the_script(self) -> None:
        store, redis = self.store(self.backend_ca)
        self.assertEqual(await store.take([BUCKET]), Taken(None))
        self.assertEqual([c[0] for c in redis.commands], [b"EVALSHA", b"EVAL"])

    @run
    async def test_a_server_of_another_ca_is_unavailable_and_told_nothing(self) -> None:
        store, redis = self.store(self.server_ca)
        with self.assertRaises(StoreUnavailable) as caught:
            await store.take([BUCKET])
        self.assertIn("certificate verify failed", str(caught.exception))
        self.assertEqual(redis.commands, [])
