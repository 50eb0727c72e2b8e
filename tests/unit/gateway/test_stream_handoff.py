"""A session's upstream streams lingering in one process end when its client stream
starts in another (``Feeds.opened_elsewhere``, told through Redis by
``gateway/shared_stream_probes.py``; two processes on one fake Redis in memory).

Behind a balancer a reopened GET may land on another process; the backend allows one GET
stream per session (2025-11-25 basic/transports "Listening for Messages from the
Server") and would refuse the new process's (409) while the old one lingers."""

from __future__ import annotations

from aigw.config import SessionsConfig
from aigw.config.redis import RedisAddress
from aigw.gateway.ended_sessions import EndedSessions
from aigw.gateway.shared_stream_probes import CHANNEL, OPENED, SharedStreamProbes, note
from aigw.gateway.stream_probes import StreamProbes
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import SessionCodec, session_digest
from tests.unit.gateway.fake_feeds import FeedsOfOneBackend
from tests.unit.gateway.fake_redis import FakeRedisTestCase
from tests.unit.memory import run

#: A backend's request on its stream (2025-11-25 client/roots).
ROOTS = {"jsonrpc": "2.0", "id": 7, "method": "roots/list"}
LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


class Process(FeedsOfOneBackend):
    """One aigw process's feeds and its share of the Redis subscription."""

    def __init__(self, case: HandoffTests) -> None:
        super().__init__(case.reactor)
        codec = SessionCodec(Sealer(b"k" * 32), case.reactor, 300.0)
        address = RedisAddress("127.0.0.1", case.port)
        self.shared = EndedSessions(codec, address, case.reactor, SessionsConfig().redis_timeout)
        self.name = f"process-{id(self)}"
        probes = StreamProbes(lambda digest: [], case.reactor)
        SharedStreamProbes(probes, self.feeds, self.shared, self.name)
        self.shared.startService()
        case.addCleanup(lambda: case.network.run(self.shared.stopService()))


class HandoffTests(FakeRedisTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.a = Process(self)
        self.b = Process(self)

    def published(self) -> list[bytes]:
        return [c[2] for c in self.redis.commands if c[:2] == [b"PUBLISH", CHANNEL]]

    @run
    async def test_a_lingering_stream_ends_when_the_sessions_stream_opens_elsewhere(
        self,
    ) -> None:
        await self.network.settle()
        self.a.stream("s1").close()
        self.a.backend.deliver["up-s1"](LIST_CHANGED)  # held for a stream that won't come
        self.a.backend.deliver["up-s1"](ROOTS)
        await self.network.settle()
        self.assertEqual(self.a.backend.closed, [])  # lingering: its own note skipped
        on_b = self.b.stream("s1")
        await self.network.settle()
        self.assertEqual(self.a.backend.closed, ["up-s1"])
        self.assertEqual(len(self.a.feeds), 0)
        # Its held request answered as at a linger's end; the notification is not.
        self.assertEqual(self.a.unreachable, [("up-s1", ROOTS, "no_client_stream")])
        # B skipped its own note (its feed has a client stream anyway).
        self.assertEqual((self.b.backend.opened, self.b.backend.closed), (["up-s1"], []))
        digest = session_digest("s1")
        opened = [note(OPENED, digest, self.a.name), note(OPENED, digest, self.b.name)]
        self.assertEqual(self.published(), opened)
        self.assertEqual(self.a.shared.failures.count + self.b.shared.failures.count, 0)
        on_b.close()

    @run
    async def test_a_stream_a_client_holds_here_is_left_alone(self) -> None:
        await self.network.settle()
        held = self.a.stream("s1")
        self.b.stream("s1")
        await self.network.settle()
        self.assertEqual(self.a.backend.closed, [])
        self.assertEqual(len(self.a.feeds), 1)
        held.close()  # and it lingers for the next client stream as before
        await self.network.settle()
        self.assertEqual(self.a.backend.closed, [])

    @run
    async def test_another_sessions_lingering_stream_is_left_alone(self) -> None:
        await self.network.settle()
        self.a.stream("s1").close()
        self.a.stream("s2").close()
        self.b.stream("s2")
        await self.network.settle()
        self.assertEqual(self.a.backend.closed, ["up-s2"])
        self.assertEqual(len(self.a.feeds), 1)
        self.reactor.advance(5.0)  # s1's linger expires as it would have
        await self.network.settle()
        self.assertEqual(self.a.backend.closed, ["up-s2", "up-s1"])

    @run
    async def test_a_malformed_note_is_counted_and_ignored(self) -> None:
        await self.network.settle()
        self.a.stream("s1").close()
        for malformed in (b"o", b"o " + b"0" * 63, b"o " + b"z" * 64):
            await self.b.shared.command(b"PUBLISH", CHANNEL, malformed)
        await self.network.settle()
        self.assertEqual(self.a.shared.failures.count, 3)
        self.assertEqual(self.a.backend.closed, [])
