"""``aigw doctor``'s ``limits store`` check against a fake Redis in memory: the take
script loaded and PING answered (ok), slower than ``redis_timeout`` (warn), scripting
refused by an ACL or nothing reachable (FAIL, saying what requests get meanwhile)."""

from __future__ import annotations

from aigw.config.limits import LimitsConfig, OnRedisError
from aigw.config.redis import RedisAddress
from aigw.doctor.limits_store import check_limits_store
from aigw.gateway.redis_buckets import TAKE_SHA
from tests.unit.gateway.fake_redis import FakeRedisTestCase
from tests.unit.memory import run


class LimitsStoreCheckTests(FakeRedisTestCase):
    def limits(self, port: int | None = None, on_error: OnRedisError = "open") -> LimitsConfig:
        address = RedisAddress("127.0.0.1", port or self.port, 1, None, "secret")
        return LimitsConfig(redis_url=address, redis_timeout=0.05, on_redis_error=on_error)

    @run
    async def test_none_without_redis_url(self) -> None:
        self.assertIsNone(await check_limits_store(LimitsConfig(), self.reactor, 1.0))

    @run
    async def test_the_script_loaded_and_a_prompt_ping_is_ok(self) -> None:
        found = await check_limits_store(self.limits(), self.reactor, 1.0)
        assert found is not None
        self.assertEqual((found.verdict, found.check), ("ok", "limits store"))
        self.assertIn(f"redis://127.0.0.1:{self.port}/1 answers (PING 0.0 ms)", found.seen)
        self.assertNotIn("secret", found.seen)
        self.assertEqual(self.redis.names(), [b"AUTH", b"SELECT", b"SCRIPT", b"PING"])
        self.assertIn(TAKE_SHA, self.redis.scripts)

    @run
    async def test_slower_than_redis_timeout_is_a_warning(self) -> None:
        self.redis.delay = 0.2  # each reply: 200 ms against a 50 ms redis_timeout
        found = await check_limits_store(self.limits(), self.reactor, 5.0)
        assert found is not None
        self.assertEqual(found.verdict, "warn")
        self.assertIn("answered PING in 200.0 ms, over limits.redis_timeout (50.0 ms)", found.seen)

    @run
    async def test_scripting_refused_by_an_acl_fails_with_what_requests_get(self) -> None:
        self.redis.refused.add(b"SCRIPT")
        found = await check_limits_store(self.limits(on_error="closed"), self.reactor, 1.0)
        assert found is not None
        assert found.fix is not None
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("'script' command", found.seen)
        self.assertIn("refused with 503 (on_redis_error: closed)", found.fix)

    @run
    async def test_nothing_listening_fails_and_open_lets_requests_through(self) -> None:
        found = await check_limits_store(self.limits(port=1), self.reactor, 1.0)
        assert found is not None
        assert found.fix is not None
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("let through unlimited (on_redis_error: open)", found.fix)
