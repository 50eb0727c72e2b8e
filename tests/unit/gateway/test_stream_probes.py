"""A session's held GET stream probed before a second one is refused
(``gateway/stream_probes.py``), and the probe asked of whichever process holds it
through Redis (``gateway/shared_stream_probes.py``, against a fake Redis in memory)."""

from __future__ import annotations

from typing import cast

from prometheus_client import generate_latest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import SessionsConfig
from aigw.config.redis import RedisAddress
from aigw.gateway.ended_sessions import EndedSessions
from aigw.gateway.limits import StreamLimits
from aigw.gateway.shared_stream_probes import (
    ASK,
    CHANNEL,
    LOST,
    OPENED,
    SharedStreamProbes,
    note,
    read_note,
)
from aigw.gateway.stream_probes import (
    MAX_PROBES,
    OUTCOMES,
    PROBE,
    PROBE_INTERVAL,
    PROBE_WAIT,
    REPLY_MARGIN,
    StreamProbes,
)
from aigw.gateway.streams import SessionStream
from aigw.metrics import GatewayMetrics
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import SessionCodec
from tests.prometheus_text import Scrape
from tests.unit.gateway.fake_feeds import FeedsOfOneBackend
from tests.unit.gateway.fake_redis import FakeRedis
from tests.unit.memory import MemoryNetwork, run

DIGEST = bytes(range(32))
OTHER = bytes(32)


class FakeHeld:
    """A held stream as a probe sees it: written to; ``dies_after`` writes, its loss is
    noticed (a proxy that notices its client gone at a write)."""

    def __init__(self, dies_after: int | None = None, behind: bool = False) -> None:
        self.closed = False
        self.behind = behind
        self.written: list[bytes] = []
        self._dies_after = dies_after

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if self._dies_after is not None and len(self.written) >= self._dies_after:
            self.closed = True


def probes_of(clock: Clock, held: dict[bytes, list[FakeHeld]]) -> StreamProbes:
    def streams(digest: bytes) -> list[SessionStream]:
        return cast(list[SessionStream], [s for s in held.get(digest, []) if not s.closed])

    return StreamProbes(streams, clock)


def counted(probes: StreamProbes) -> dict[tuple[str, str], float]:
    """The non-zero series of ``aigw_stream_probes_total`` in a scrape of ``probes``'
    outcomes, by (where, outcome); every one of ``OUTCOMES`` is in the scrape."""
    metrics = GatewayMetrics([], lambda backend, name: True)
    metrics.watch_stream_probes(lambda: probes.outcomes)
    scrape = Scrape.parse("text/plain", generate_latest(metrics.registry).decode())
    series = {
        (where, outcome): scrape.value("aigw_stream_probes_total", where=where, outcome=outcome)
        for where, outcome in OUTCOMES
    }
    assert None not in series.values(), series
    return {key: value for key, value in series.items() if value}


class LocalProbeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()

    def settle(self, seconds: float) -> None:
        """Run the clock ``seconds`` forward, one probe interval at a time."""
        steps = round(seconds / PROBE_INTERVAL) + 1
        for _ in range(steps):
            self.clock.advance(PROBE_INTERVAL)

    def test_a_holder_lost_at_a_write_gives_way(self) -> None:
        """The second comment is what HAProxy needs to notice its client gone."""
        dead = FakeHeld(dies_after=2)
        probes = probes_of(self.clock, {DIGEST: [dead]})
        lost = probes.probe_here(DIGEST)
        self.assertNoResult(lost)
        self.settle(PROBE_WAIT)
        self.assertIs(self.successResultOf(lost), True)
        self.assertEqual(dead.written, [PROBE, PROBE])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(counted(probes), {("here", "lost"): 1.0})

    def test_a_live_holder_keeps_its_place(self) -> None:
        live = FakeHeld()
        probes = probes_of(self.clock, {DIGEST: [live]})
        alive = probes.probe_here(DIGEST)
        self.settle(PROBE_WAIT)
        self.assertIs(self.successResultOf(alive), False)
        # A comment each interval, for PROBE_WAIT at most; then nothing more.
        self.assertEqual(len(live.written), round(PROBE_WAIT / PROBE_INTERVAL))
        self.settle(10 * PROBE_WAIT)
        self.assertEqual(len(live.written), round(PROBE_WAIT / PROBE_INTERVAL))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(counted(probes), {("here", "alive"): 1.0})

    def test_a_holder_behind_is_not_written_to_and_counts_as_alive(self) -> None:
        behind = FakeHeld(dies_after=1, behind=True)
        probes = probes_of(self.clock, {DIGEST: [behind]})
        alive = probes.probe_here(DIGEST)
        self.settle(PROBE_WAIT)
        self.assertIs(self.successResultOf(alive), False)
        self.assertEqual(behind.written, [])

    def test_concurrent_asks_share_one_probe(self) -> None:
        dead = FakeHeld(dies_after=3)
        probes = probes_of(self.clock, {DIGEST: [dead]})
        asked = [probes.probe_here(DIGEST) for _ in range(5)]
        self.settle(PROBE_WAIT)
        self.assertEqual([self.successResultOf(d) for d in asked], [True] * 5)
        self.assertEqual(len(dead.written), 3)  # one probe's comments, not five
        self.assertEqual(counted(probes), {("here", "lost"): 1.0})  # one probe, not five

    def test_a_write_that_raises_answers_as_alive_and_is_logged(self) -> None:
        broken = FakeHeld()

        def refuse(data: bytes) -> None:
            raise RuntimeError("the request finished under the probe")

        broken.write = refuse  # type: ignore[method-assign]
        probes = probes_of(self.clock, {DIGEST: [broken]})
        answered = probes.probe_here(DIGEST)
        self.assertIs(self.successResultOf(answered), False)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIs(self.successResultOf(probes.probe_here(DIGEST)), False)  # probed anew
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(counted(probes), {("here", "failed"): 2.0})

    def test_nothing_held_here_is_lost_at_once(self) -> None:
        probes = probes_of(self.clock, {})
        self.assertFalse(probes.held_here(DIGEST))
        self.assertIs(self.successResultOf(probes.probe_here(DIGEST)), True)
        self.assertEqual(counted(probes), {})  # nothing was probed

    def test_probes_in_flight_are_bounded(self) -> None:
        held = {i.to_bytes(32, "big"): [FakeHeld()] for i in range(MAX_PROBES + 1)}
        probes = probes_of(self.clock, held)
        started = [probes.probe_here(digest) for digest in held]
        self.assertIs(self.successResultOf(started[-1]), False)  # refused at once
        self.assertEqual(sum(len(s[0].written) for s in held.values()), MAX_PROBES)
        self.assertEqual(counted(probes), {("here", "full"): 1.0})
        self.settle(PROBE_WAIT)
        self.assertEqual([self.successResultOf(d) for d in started[:-1]], [False] * MAX_PROBES)
        self.assertEqual(counted(probes), {("here", "full"): 1.0, ("here", "alive"): MAX_PROBES})


class AwaitOthersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.probes = probes_of(self.clock, {})
        self.asked: list[bytes] = []

    def test_without_redis_nobody_else_is_asked(self) -> None:
        self.assertIs(self.successResultOf(self.probes.await_others(DIGEST)), False)
        self.assertEqual(counted(self.probes), {})  # nobody was asked

    def test_the_others_are_asked_once_and_their_word_wakes_every_waiter(self) -> None:
        self.probes.ask_others = self.asked.append
        waiting = [self.probes.await_others(DIGEST) for _ in range(3)]
        other = self.probes.await_others(OTHER)
        self.assertEqual(self.asked, [DIGEST, OTHER])
        self.probes.lost_elsewhere(DIGEST)
        self.assertEqual([self.successResultOf(d) for d in waiting], [True] * 3)
        self.assertNoResult(other)
        self.clock.advance(PROBE_WAIT + REPLY_MARGIN)
        self.assertIs(self.successResultOf(other), False)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.probes.lost_elsewhere(OTHER)  # late: nobody waits any more
        lost, unanswered = ("elsewhere", "lost"), ("elsewhere", "unanswered")
        self.assertEqual(counted(self.probes), {lost: 1.0, unanswered: 1.0})

    def test_silence_is_a_live_holder(self) -> None:
        self.probes.ask_others = self.asked.append
        waiting = self.probes.await_others(DIGEST)
        self.clock.advance(PROBE_WAIT + REPLY_MARGIN - PROBE_INTERVAL)
        self.assertNoResult(waiting)
        self.clock.advance(PROBE_INTERVAL)
        self.assertIs(self.successResultOf(waiting), False)
        self.assertEqual(counted(self.probes), {("elsewhere", "unanswered"): 1.0})

    def test_awaits_are_bounded(self) -> None:
        self.probes.ask_others = self.asked.append
        digests = [i.to_bytes(32, "big") for i in range(MAX_PROBES + 1)]
        waiting = [self.probes.await_others(digest) for digest in digests]
        self.assertIs(self.successResultOf(waiting[-1]), False)  # refused at once
        self.assertEqual(self.asked, digests[:-1])
        self.assertEqual(counted(self.probes), {("elsewhere", "full"): 1.0})
        self.clock.advance(PROBE_WAIT + REPLY_MARGIN)
        self.assertEqual([self.successResultOf(d) for d in waiting[:-1]], [False] * MAX_PROBES)


class NoteTests(SynchronousTestCase):
    def test_notes_name_a_kind_and_a_digest(self) -> None:
        self.assertEqual(read_note(note(ASK, DIGEST)), (ASK, DIGEST, b""))
        self.assertEqual(read_note(note(LOST, DIGEST)), (LOST, DIGEST, b""))
        self.assertEqual(read_note(note(OPENED, DIGEST, "a1")), (OPENED, DIGEST, b"a1"))
        named = DIGEST.hex().encode()
        malformed = (
            b"",
            b"p",
            b"x " + named,
            b"p zz",
            b"l " + b"0" * 63,
            b"o " + named,  # an opened note names its process
            b"p " + named + b" a1",  # the others do not
            b"o " + named + b" " + b"a" * 65,  # a process name past MAX_PROCESS
            b"o " + named + b" a b",
        )
        for payload in malformed:
            self.assertIsNone(read_note(payload), payload)


class SharedProbeTests(SynchronousTestCase):
    """Two processes on one fake Redis: the one refusing a GET asks, the holder probes."""

    def setUp(self) -> None:
        self.network = MemoryNetwork()
        self.reactor = self.network.reactor
        self.redis = FakeRedis(self.reactor)
        self.address = RedisAddress("127.0.0.1", self.network.serve(self.redis))

    def process(self, held: dict[bytes, list[FakeHeld]]) -> tuple[StreamProbes, EndedSessions]:
        codec = SessionCodec(Sealer(b"k" * 32), self.reactor, 300.0)
        shared = EndedSessions(codec, self.address, self.reactor, SessionsConfig().redis_timeout)
        probes = probes_of(self.reactor, held)
        feeds = FeedsOfOneBackend(self.reactor, limits=StreamLimits(1, 1)).feeds
        SharedStreamProbes(probes, feeds, shared, f"process-{id(probes)}")
        shared.startService()
        self.addCleanup(lambda: self.network.run(shared.stopService()))
        return probes, shared

    def published(self) -> list[bytes]:
        return [c[2] for c in self.redis.commands if c[:2] == [b"PUBLISH", CHANNEL]]

    @run
    async def test_a_holder_elsewhere_lost_at_a_write_gives_way(self) -> None:
        dead = FakeHeld(dies_after=2)
        holding, holder = self.process({DIGEST: [dead]})
        asking, _ = self.process({})
        await self.network.settle()
        lost: Deferred[bool] = asking.await_others(DIGEST)
        self.assertIs(await lost, True)
        self.assertEqual(dead.written, [PROBE, PROBE])
        self.assertEqual(self.published(), [note(ASK, DIGEST), note(LOST, DIGEST)])
        self.assertEqual(holder.failures.count, 0)
        self.assertEqual(counted(holding), {("here", "lost"): 1.0})
        self.assertEqual(counted(asking), {("elsewhere", "lost"): 1.0})

    @run
    async def test_a_live_holder_elsewhere_keeps_its_place(self) -> None:
        live = FakeHeld()
        holding, _ = self.process({DIGEST: [live]})
        asking, _ = self.process({})
        await self.network.settle()
        self.assertIs(await asking.await_others(DIGEST), False)
        self.assertEqual(len(live.written), round(PROBE_WAIT / PROBE_INTERVAL))
        self.assertEqual(self.published(), [note(ASK, DIGEST)])
        self.assertEqual(counted(holding), {("here", "alive"): 1.0})
        self.assertEqual(counted(asking), {("elsewhere", "unanswered"): 1.0})

    @run
    async def test_a_malformed_note_is_counted_and_ignored(self) -> None:
        _, holder = self.process({DIGEST: [FakeHeld()]})
        await self.network.settle()
        await holder.command(b"PUBLISH", CHANNEL, b"p not-a-digest")
        await self.network.settle()
        self.assertEqual(holder.failures.count, 1)
