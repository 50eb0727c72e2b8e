"""A shared store's failures: each counted, a line logged at most once per
``STORE_LOG_INTERVAL`` saying how many it stands for (the limiter's and the ended
sessions' lines)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as NoReply
from twisted.internet.task import Clock
from twisted.logger import Logger, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from aigw.config.limits import LimitsConfig
from aigw.config.redis import RedisAddress
from aigw.gateway.ended_sessions import EndedSessions
from aigw.gateway.ratelimit import Limiter, build_limiter
from aigw.gateway.store_failures import STORE_LOG_INTERVAL, StoreFailures, StoreUnavailable, why
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import SessionCodec

LINE = "store {where} down while {doing} ({count} since the last line, {total} in all): {error}"


def text(event: dict[str, Any]) -> str:
    return str(event["log_format"].format(**event))


class StoreFailuresTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.failures = StoreFailures(self.clock, Logger(), LINE, where="redis://r")

    def test_each_failure_counted_one_line_per_interval_with_the_count_since(self) -> None:
        with capturedLogs() as events:
            for _ in range(3):
                self.failures.report(StoreUnavailable("no answer"), doing="taking")
            self.clock.advance(STORE_LOG_INTERVAL - 0.5)
            self.failures.report(StoreUnavailable("no answer"), doing="taking")
            self.clock.advance(0.5)
            self.failures.report(StoreUnavailable("refused"), doing="renewing")
        self.assertEqual(self.failures.count, 5)
        self.assertEqual(
            [text(event) for event in events],
            [
                "store redis://r down while taking (1 since the last line, 1 in all): no answer",
                "store redis://r down while renewing (4 since the last line, 5 in all): refused",
            ],
        )
        self.assertEqual({event["log_level"].name for event in events}, {"warn"})

    def test_as_an_errback_it_handles_the_failure(self) -> None:
        work: Deferred[None] = Deferred()
        work.addErrback(self.failures.failed, doing="renewing")
        with capturedLogs() as events:
            work.errback(StoreUnavailable("no answer"))
        self.successResultOf(work)  # handled: no unhandled error in the log
        self.assertEqual((self.failures.count, events[0]["doing"]), (1, "renewing"))

    def test_a_timeout_is_said_as_the_bound_it_missed(self) -> None:
        waiting: Deferred[None] = Deferred()
        waiting.addTimeout(5.0, self.clock)
        self.clock.advance(5.0)
        with capturedLogs() as events:
            waiting.addErrback(self.failures.failed, doing="publishing")
        self.assertEqual(events[0]["error"], "no reply within 5 s")  # not "(5.0, 'Deferred')"
        self.assertEqual(why(NoReply("Callback timed out")), "no reply in time")

    def test_an_error_without_text_is_named_by_its_type(self) -> None:
        with capturedLogs() as events:
            self.failures.report(ConnectionError(), doing="subscribing")
        self.assertIn("): ConnectionError", text(events[0]))


class LinesTests(SynchronousTestCase):
    """The two stores' own lines, through their own reporters."""

    def test_the_limiter_says_whether_requests_are_let_through(self) -> None:
        for on_error, verdict in (("open", "allowed"), ("closed", "refused")):
            limiter = Limiter(LimitsConfig(on_redis_error=on_error), Clock())
            with capturedLogs() as events:
                self.assertEqual(
                    limiter.failed_take(StoreUnavailable("down")), verdict == "refused"
                )
            self.assertEqual(
                text(events[0]),
                "rate limiter store unavailable (1 failures since the last report, 1 in all): "
                f"down; requests are {verdict}",
            )
            self.assertEqual(limiter.store_failures.count, 1)

    def test_a_limiter_built_for_a_reload_counts_on(self) -> None:
        clock = Clock()
        old = build_limiter(LimitsConfig(), clock)
        old.failed_take(StoreUnavailable("down"))
        new = build_limiter(LimitsConfig(), clock, old.store_failures)
        with capturedLogs() as events:
            new.failed_take(StoreUnavailable("down"))  # within the interval: not logged
        self.assertEqual((new.store_failures.count, events), (2, []))
        replaced = weakref.ref(old)
        del old
        gc.collect()
        self.assertIsNone(replaced())  # the reporter does not keep the old limiter alive

    def test_the_ended_sessions_line_names_the_store_and_what_failed(self) -> None:
        clock = Clock()
        codec = SessionCodec(Sealer(b"k" * 32), clock, 300.0)
        ended = EndedSessions(codec, RedisAddress("r", 6379), clock, 5.0)  # not started
        with capturedLogs() as events:
            ended.failures.report(StoreUnavailable("down"), doing="telling an end")
        self.assertEqual(
            text(events[0]),
            f"ended sessions store {ended.address} unavailable while telling an end (1 "
            "failures since the last report, 1 in all): down; a DELETE still ends its "
            "session in its own process",
        )
