"""``redis_store.answered``: the one judgement of a Redis store that answered, shared by
the ``limits store`` and ``sessions store`` checks."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.doctor.findings import Finding
from aigw.doctor.redis_store import answered


def judged(round_trip: float) -> Finding:
    return answered(
        "some store", "redis://r:6379/0", round_trip, "limits", 0.05, "takes", "takes it all"
    )


class AnsweredTests(SynchronousTestCase):
    def test_within_redis_timeout_is_ok_with_what_it_takes(self) -> None:
        self.assertEqual(
            judged(0.0123),
            Finding("ok", "some store", "redis://r:6379/0 answers (PING 12.3 ms) and takes it all"),
        )

    def test_at_redis_timeout_is_still_ok(self) -> None:
        self.assertEqual(judged(0.05).verdict, "ok")

    def test_over_redis_timeout_warns_naming_the_section_key(self) -> None:
        self.assertEqual(
            judged(0.2),
            Finding(
                "warn",
                "some store",
                "redis://r:6379/0 answered PING in 200.0 ms, over limits.redis_timeout (50.0 ms)",
                "raise limits.redis_timeout or run Redis closer: slower takes count as failures",
            ),
        )
