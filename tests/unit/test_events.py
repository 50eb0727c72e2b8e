"""events.Observers: every gateway event reaches every observer, in registration order."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.events import (
    AccessDecided,
    AuthenticationRefused,
    AuthServerFetched,
    Observers,
    RequestFinished,
    UpstreamConnection,
    heard,
)
from aigw.principal import ANONYMOUS
from tests.fakes import RecordingObserver

FINISHED = RequestFinished("tools/call", ANONYMOUS, "files", "read", "ok", None, 0.02, 0.01)
DECIDED = AccessDecided(ANONYMOUS, "files", "read", True, "access.rules[0]")
REFUSED = AuthenticationRefused(401, "expired")
OPENED = UpstreamConnection("files", "opened")
FETCHED = AuthServerFetched("introspection", False)


def tell_everything(observers: Observers) -> None:
    observers.request_finished(FINISHED)
    observers.access_decided(DECIDED)
    observers.authentication_refused(REFUSED)
    observers.upstream_connection(OPENED)
    observers.auth_server_fetched(FETCHED)


class ObserversTests(SynchronousTestCase):
    def test_every_event_reaches_every_observer(self) -> None:
        first, second = RecordingObserver(), RecordingObserver()
        tell_everything(Observers(first, second))
        for observer in (first, second):
            self.assertEqual(observer.requests, [FINISHED])
            self.assertEqual(observer.decisions, [DECIDED])
            self.assertEqual(observer.refusals, [REFUSED])
            self.assertEqual(observer.connections, [OPENED])
            self.assertEqual(observer.fetches, [FETCHED])

    def test_observers_are_called_in_registration_order(self) -> None:
        calls: list[str] = []

        class Named(RecordingObserver):
            def __init__(self, name: str) -> None:
                super().__init__()
                self.name = name

            def authentication_refused(self, event: AuthenticationRefused) -> None:
                calls.append(self.name)

        observers = Observers(Named("first"))
        observers.add(Named("second"))
        observers.authentication_refused(REFUSED)
        self.assertEqual(calls, ["first", "second"])

    def test_an_observer_added_later_sees_only_later_events(self) -> None:
        early, late = RecordingObserver(), RecordingObserver()
        observers = Observers(early)
        observers.upstream_connection(OPENED)
        observers.add(late)
        observers.upstream_connection(UpstreamConnection("files", "lost", "reset"))
        self.assertEqual(len(early.connections), 2)
        self.assertEqual([event.state for event in late.connections], ["lost"])

    def test_no_observers_is_fine(self) -> None:
        """Nobody listens: every event is taken and dropped, and ``heard`` says so (the hot
        path then builds no events at all)."""
        observers = Observers()
        tell_everything(observers)
        self.assertFalse(heard(observers))
        late = RecordingObserver()
        observers.add(late)
        self.assertTrue(heard(observers))
        self.assertEqual(late.requests, [])  # nothing told before it was added was kept

    def test_observers_nest(self) -> None:
        """An ``Observers`` is itself a ``GatewayObserver``."""
        inner = RecordingObserver()
        tell_everything(Observers(Observers(inner)))
        self.assertEqual(inner.requests, [FINISHED])


class HeardTests(SynchronousTestCase):
    """The hot path builds a request's events only when someone hears them."""

    def test_nobody_registered_hears_nothing(self) -> None:
        self.assertFalse(heard(Observers()))

    def test_an_observer_registered_later_is_heard(self) -> None:
        observers = Observers()
        observers.add(RecordingObserver())
        self.assertTrue(heard(observers))

    def test_any_other_observer_is_heard(self) -> None:
        self.assertTrue(heard(RecordingObserver()))
        self.assertTrue(heard(Observers(Observers())))  # not looked into: told, as before
