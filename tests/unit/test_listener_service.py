"""ListenerService: a listener the config names must listen; an optional one may fail."""

from __future__ import annotations

from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from aigw.service import ListenerService


class BusyReactor(MemoryReactorClock):
    """Every port is taken."""

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))


class ListenerServiceTests(SynchronousTestCase):
    def test_a_required_listener_that_cannot_listen_stops_the_daemon(self) -> None:
        listener = ListenerService("tcp:9464:interface=127.0.0.1", BusyReactor(), Factory())
        with self.assertRaises(SystemExit) as stopped:
            listener.privilegedStartService()
        self.assertEqual(stopped.exception.code, 71)

    def test_an_optional_listener_that_cannot_listen_is_logged_and_skipped(self) -> None:
        """The default metrics port, which nobody asked for, never stops the gateway."""
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        listener = ListenerService(
            "tcp:9464:interface=127.0.0.1", BusyReactor(), Factory(), optional=True
        )
        listener.privilegedStartService()
        self.assertFalse(listener.listening)
        [logged] = [e for e in events if "going on without it" in e.get("log_format", "")]
        self.assertEqual(logged["endpoint"], "tcp:9464:interface=127.0.0.1")
