"""``aigw doctor``'s ``sessions store`` check against a fake Redis in memory: every
command the processes send taken, a command an ACL refuses named, nothing reachable."""

from __future__ import annotations

import attrs

from aigw.config import SessionsConfig
from aigw.config.redis import RedisAddress
from aigw.doctor.sessions_store import check_sessions_store
from aigw.gateway.ended_sessions import KEY_PREFIX
from tests.unit.gateway.fake_redis import FakeRedisTestCase
from tests.unit.memory import run


class SessionsStoreCheckTests(FakeRedisTestCase):
    def sessions(self, port: int | None = None) -> SessionsConfig:
        address = RedisAddress("127.0.0.1", port or self.port, 2, "aigw", "secret")
        return SessionsConfig(redis_url=address)

    @run
    async def test_none_without_redis_url(self) -> None:
        self.assertIsNone(await check_sessions_store(SessionsConfig(), self.reactor, 1.0))

    @run
    async def test_every_command_taken_is_ok_and_leaves_nothing(self) -> None:
        found = await check_sessions_store(self.sessions(), self.reactor, 1.0)
        assert found is not None
        self.assertEqual((found.verdict, found.check), ("ok", "sessions store"))
        self.assertIn(f"redis://127.0.0.1:{self.port}/2 answers (PING", found.seen)
        self.assertNotIn("secret", found.seen)
        names = set(self.redis.names())
        self.assertTrue({b"AUTH", b"SELECT", b"SUBSCRIBE", b"SET", b"PUBLISH"} <= names)
        self.assertTrue({b"SCAN", b"PTTL", b"PING"} <= names)
        stored = [c[1:] for c in self.redis.commands if c[0] == b"SET"]
        self.assertEqual(stored[0], [KEY_PREFIX + b"0" * 64, b"1", b"PX", b"1"])
        self.assertEqual(
            stored[1], [b"aigw:elicitation:aigw-doctor-probe", b"1", b"NX", b"PX", b"1"]
        )
        subscribed = [c[1] for c in self.redis.commands if c[0] == b"SUBSCRIBE"]
        self.assertEqual(subscribed, [b"aigw:ended", b"aigw:elicitation", b"aigw:stream-probe"])
        published = [c[1:] for c in self.redis.commands if c[0] == b"PUBLISH"]
        self.assertEqual(published[-1], [b"aigw:stream-probe", b"p " + b"0" * 64])
        await self.network.settle()
        self.assertEqual(self.network.open_connections(self.port), 0)

    @run
    async def test_slower_than_redis_timeout_is_a_warning(self) -> None:
        self.redis.delay = 0.2  # each reply: 200 ms against a 100 ms redis_timeout
        sessions = attrs.evolve(self.sessions(), redis_timeout=0.1)
        found = await check_sessions_store(sessions, self.reactor, 5.0)
        assert found is not None
        assert found.fix is not None
        self.assertEqual(found.verdict, "warn")
        self.assertIn(
            "answered PING in 200.0 ms, over sessions.redis_timeout (100.0 ms)", found.seen
        )
        self.assertIn("raise sessions.redis_timeout", found.fix)
        # Within it: ok.
        found = await check_sessions_store(self.sessions(), self.reactor, 5.0)
        assert found is not None
        self.assertEqual(found.verdict, "ok")

    @run
    async def test_a_command_the_acl_refuses_fails_naming_it(self) -> None:
        self.redis.refused.add(b"PUBLISH")
        found = await check_sessions_store(self.sessions(), self.reactor, 1.0)
        assert found is not None
        assert found.fix is not None
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("'publish' command", found.seen)
        self.assertIn("only in the process that served it", found.fix)

    @run
    async def test_a_channel_the_acl_refuses_fails(self) -> None:
        """Completion notices (``elicitation_completions.py``) need their channel too."""
        self.redis.refused_channels.add(b"aigw:elicitation")
        found = await check_sessions_store(self.sessions(), self.reactor, 1.0)
        assert found is not None
        assert found.fix is not None
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("No permissions to access a channel", found.seen)
        self.assertIn("aigw:elicitation", found.fix)

    @run
    async def test_the_stream_probe_channel_refused_fails(self) -> None:
        """Probes of held GET streams (``shared_stream_probes.py``) need theirs."""
        self.redis.refused_channels.add(b"aigw:stream-probe")
        found = await check_sessions_store(self.sessions(), self.reactor, 1.0)
        assert found is not None
        assert found.fix is not None
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("aigw:stream-probe", found.fix)

    @run
    async def test_nothing_listening_fails(self) -> None:
        found = await check_sessions_store(self.sessions(port=1), self.reactor, 1.0)
        assert found is not None
        self.assertEqual(found.verdict, "FAIL")
        self.assertIn("redis://127.0.0.1:1/2: cannot connect to Redis", found.seen)
