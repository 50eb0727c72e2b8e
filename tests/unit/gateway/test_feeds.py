"""``streams.Feeds`` in memory: what a lingering upstream stream does with what comes
while no client stream takes it (``linger.py``)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.gateway.fake_feeds import FeedsOfOneBackend

#: A backend's ping (basic/utilities/ping) and request (client/roots) on its stream.
PING = {"jsonrpc": "2.0", "id": 8, "method": "ping"}
ROOTS = {"jsonrpc": "2.0", "id": 7, "method": "roots/list"}
LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


class LingeringPingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.one = FeedsOfOneBackend(self.clock)

    def test_a_ping_on_a_lingering_stream_is_answered_as_a_ping_not_held_nor_refused(
        self,
    ) -> None:
        """basic/utilities/ping "respond promptly": answered at once by aigw (its
        ``pinged`` path), never held for the next client stream nor refused as a
        request no client took."""
        self.one.stream("s1").close()
        self.one.backend.deliver["up-s1"](PING)
        self.assertEqual(self.one.pinged, [("up-s1", PING)])
        self.one.backend.deliver["up-s1"](LIST_CHANGED)
        received: list[object] = []
        self.one.stream("s1", received=received)
        self.assertEqual(received, [LIST_CHANGED])
        self.assertEqual(self.one.unreachable, [])

    def test_a_ping_with_a_client_stream_goes_to_the_stream(self) -> None:
        """Not lingering, the feed delivers as ever (the relay answers the ping)."""
        received: list[object] = []
        self.one.stream("s1", received=received)
        self.one.backend.deliver["up-s1"](PING)
        self.assertEqual((received, self.one.pinged), ([PING], []))

    def test_a_request_that_is_not_a_ping_is_held_then_refused_at_the_lingers_end(
        self,
    ) -> None:
        self.one.stream("s1").close()
        self.one.backend.deliver["up-s1"](ROOTS)
        self.assertEqual((self.one.pinged, self.one.unreachable), ([], []))
        self.clock.advance(5.0)
        self.assertEqual(self.one.unreachable, [("up-s1", ROOTS, "no_client_stream")])
