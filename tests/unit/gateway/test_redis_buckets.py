"""The Redis bucket store against a fake RESP2 server in memory (iosim): the script by
``EVALSHA`` then ``EVAL`` on ``NOSCRIPT``, bounded waits, fail-open and fail-closed."""

from __future__ import annotations

from typing import Any

from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase

from aigw.config.limits import LimitRule, LimitsConfig, Rate
from aigw.config.redis import RedisAddress
from aigw.gateway.ratelimit import Bucket, Limiter, Permit, RateLimited, StoreUnavailable, Taken
from aigw.gateway.redis_buckets import TAKE_SHA, RedisBuckets
from aigw.gateway.redis_client import RECONNECT_DELAY
from aigw.principal import Principal
from tests.unit.gateway.fake_redis import FakeRedis
from tests.unit.memory import MemoryNetwork, run
from tests.unit.upstream.private_ca import CA, PrivateCATestCase

ALICE = Principal("https://as", "alice", "app", frozenset(), {}, None, None)
BUCKET = Bucket("aigw:rl:0:sub:ab", 5.0, 5)


class RedisBucketsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.network = MemoryNetwork()
        self.reactor = self.network.reactor
        self.redis = FakeRedis()
        self.port = self.network.serve(self.redis)

    def store(self, port: int | None = None, **address: Any) -> RedisBuckets:
        where = RedisAddress("127.0.0.1", port or self.port, **address)
        store = RedisBuckets(where, self.reactor, 0.05)
        self.addCleanup(lambda: self.network.run(store.close()))
        return store

    @run
    async def test_noscript_falls_back_to_eval_once(self) -> None:
        store = self.store(db=2, password="pw")
        self.assertEqual(await store.take([BUCKET]), Taken(None))
        self.redis.reply = b"*2\r\n:1\r\n:1500\r\n"
        self.assertEqual(await store.take([BUCKET]), Taken(0, 1.5))
        names = [c[0] for c in self.redis.commands]
        self.assertEqual(names, [b"AUTH", b"SELECT", b"EVALSHA", b"EVAL", b"EVALSHA"])
        evalsha = self.redis.commands[2]
        self.assertEqual(evalsha[1:], [TAKE_SHA, b"1", BUCKET.key.encode(), b"5.0", b"5"])

    @run
    async def test_a_silent_redis_is_unavailable_within_the_timeout(self) -> None:
        store = self.store()
        self.redis.silent = True
        started = self.reactor.seconds()
        with self.assertRaises(StoreUnavailable):
            await store.take([BUCKET])
        self.assertAlmostEqual(self.reactor.seconds() - started, 0.05)
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
        self.assertEqual(limiter.store_errors, 2)

    @run
    async def test_fail_closed_refuses_with_503(self) -> None:
        self.redis.silent = True
        limiter = self.limiter("closed")
        with self.assertRaises(RateLimited) as caught:
            await limiter.enter(ALICE)
        refused = caught.exception
        self.assertEqual((refused.status, refused.limit), (503, "limits.redis_url"))
        self.assertEqual(limiter.store_errors, 1)

    @run
    async def test_a_refusal_from_redis_names_the_rule(self) -> None:
        self.redis.reply = b"*2\r\n:1\r\n:2001\r\n"
        limiter = self.limiter("open")
        with self.assertRaises(RateLimited) as caught:
            await limiter.enter(ALICE)
        self.assertEqual((caught.exception.limit, caught.exception.retry_after), ("sub:0", 3))

    def limiter(self, on_error: Any) -> Limiter:
        config = LimitsConfig(
            on_redis_error=on_error, rules=(LimitRule(per="sub", rate=Rate(5, 1.0)),)
        )
        limiter = Limiter(config, self.reactor, self.store())
        return limiter


class RedisOverTLSTests(PrivateCATestCase):
    """``rediss://``: verified TLS to the server, trusting only ``redis_ca_file`` when
    given; a certificate of another CA makes the store unavailable (closed or open is
    then the limiter's ``on_redis_error``), never a plaintext fallback."""

    def store(self, ca: CA) -> tuple[RedisBuckets, FakeRedis]:
        redis = FakeRedis()
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
