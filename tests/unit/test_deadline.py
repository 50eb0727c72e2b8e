"""aigw.deadline: a deadline expires when due, moved or stopped without a timer each time."""

from __future__ import annotations

from twisted.internet.task import Clock

from aigw.deadline import Deadline


def _deadline() -> tuple[Deadline, Clock, list[float]]:
    clock = Clock()
    expired: list[float] = []
    return Deadline(clock, lambda: expired.append(clock.seconds())), clock, expired


def test_expires_when_due() -> None:
    deadline, clock, expired = _deadline()
    deadline.start(10)
    clock.advance(9.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == [10]
    assert not deadline.running
    assert clock.getDelayedCalls() == []


def test_moved_later_it_expires_at_the_new_time_with_one_pending_call() -> None:
    deadline, clock, expired = _deadline()
    deadline.start(10)
    for _ in range(5):
        clock.advance(4)
        deadline.start(10)  # a request after another
        assert len(clock.getDelayedCalls()) == 1
    clock.advance(9.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == [30]


def test_stopped_it_never_expires_and_its_call_goes() -> None:
    deadline, clock, expired = _deadline()
    deadline.start(10)
    deadline.stop()
    clock.advance(20)
    assert expired == []
    assert clock.getDelayedCalls() == []


def test_restarted_after_a_stop_it_counts_from_the_restart() -> None:
    deadline, clock, expired = _deadline()
    deadline.start(10)
    clock.advance(8)
    deadline.stop()
    clock.advance(1)
    deadline.start(10)  # the call armed at 0 is still pending: it is reused
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(9.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == [19]


def test_a_shorter_period_than_the_pending_call_is_honoured() -> None:
    deadline, clock, expired = _deadline()
    deadline.start(50)
    deadline.start(5)
    clock.advance(5)
    assert expired == [5]


def test_cancel_leaves_no_call() -> None:
    deadline, clock, expired = _deadline()
    deadline.start(10)
    deadline.cancel()
    assert clock.getDelayedCalls() == []
    clock.advance(20)
    assert expired == []
