"""``streams.Feeds`` in memory: what a lingering upstream stream does with what comes
while no client stream takes it (``linger.py``), and how another process's client
stream of its session finds it (``opened_elsewhere``)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.gateway.limits import StreamLimits
from aigw.gateway.streams import BACKOFF_FIRST, FeedKey, UpstreamFeed
from aigw.principal import UserKey
from aigw.sealed.session_id import session_digest
from aigw.upstream.api import UpstreamError, UpstreamSessionGone
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


class LingeringIndexTests(SynchronousTestCase):
    """``Feeds.opened_elsewhere`` finds a session's lingering feeds by its binding, and
    ``Feeds.lingers`` a user's by the user, in indexes that stay in step with the
    lingering feeds however they stop lingering."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.one = FeedsOfOneBackend(self.clock, limits=StreamLimits(3, 2))
        self.feeds = self.one.feeds

    def assertInStep(self) -> None:
        """Each index holds exactly the lingering feeds, grouped by binding or by user,
        each group in the order the feeds started lingering, no empty group."""
        by_binding: dict[str, dict[FeedKey, UpstreamFeed]] = {}
        by_user: dict[UserKey, dict[FeedKey, UpstreamFeed]] = {}
        for key, feed in self.feeds._lingering.items():
            by_binding.setdefault(key[1], {})[key] = feed
            by_user.setdefault(feed.principal.user, {})[key] = feed
        for index, derived in (
            (self.feeds._lingering_by_binding.snapshot(), by_binding),
            (self.feeds._lingering_by_user.snapshot(), by_user),
        ):
            self.assertEqual(index, derived)
            for group, feeds in index.items():
                self.assertEqual(list(feeds), list(derived[group]))  # the same order

    def linger(self, *sessions: str, user: str = "alice") -> None:
        for session in sessions:
            self.one.stream(session, user).close()
        self.assertInStep()

    def opened_elsewhere(self, session: str) -> int:
        ended = self.feeds.opened_elsewhere(session_digest(session))
        self.assertInStep()
        return ended

    def test_a_note_ends_its_sessions_lingering_feeds_and_no_other(self) -> None:
        self.linger("s1", "s2")
        self.assertEqual(self.opened_elsewhere("s1"), 1)
        self.assertEqual(self.one.backend.closed, ["up-s1"])
        self.assertEqual(self.opened_elsewhere("s1"), 0)
        self.assertEqual(self.opened_elsewhere("s2"), 1)
        self.assertEqual(self.feeds._lingering_by_binding.snapshot(), {})

    def test_a_feed_a_client_stream_took_is_not_found(self) -> None:
        self.linger("s1")
        self.one.stream("s1")
        self.assertInStep()
        self.assertEqual(self.opened_elsewhere("s1"), 0)
        self.assertEqual(self.one.backend.closed, [])

    def test_a_feed_whose_linger_expired_is_not_found(self) -> None:
        self.linger("s1")
        self.clock.advance(5.0)
        self.assertInStep()
        self.assertEqual((self.opened_elsewhere("s1"), self.one.backend.closed), (0, ["up-s1"]))

    def test_a_feed_closed_past_the_users_bound_is_not_found(self) -> None:
        self.linger("s1", "s2", "s3")  # two of a user's linger at most
        self.assertEqual(self.one.backend.closed, ["up-s1"])
        self.assertEqual(self.opened_elsewhere("s1"), 0)
        self.assertEqual(self.opened_elsewhere("s3"), 1)

    def test_a_feed_closed_past_the_process_bound_is_not_found(self) -> None:
        for n, user in enumerate(("ann", "bob", "cat", "dan")):
            self.linger(f"s{n}", user=user)  # three linger in the process at most
        self.assertEqual(self.one.backend.closed, ["up-s0"])
        self.assertEqual(self.opened_elsewhere("s0"), 0)
        self.assertEqual(self.opened_elsewhere("s3"), 1)

    def test_a_feed_closed_for_a_stream_resuming_from_before_is_not_found(self) -> None:
        self.linger("s1")
        self.one.stream("s1", resumes_from="ev-0")  # the backend replays: a new feed
        self.assertInStep()
        self.assertEqual(self.one.backend.closed, ["up-s1"])
        self.assertEqual(self.opened_elsewhere("s1"), 0)

    def test_a_feed_whose_upstream_stream_ended_is_not_found(self) -> None:
        self.linger("s1")
        gone = UpstreamSessionGone("alpha", "session_gone", "upstream session expired")
        self.one.backend.heads["up-s1"].errback(gone)
        self.assertInStep()
        self.assertEqual((self.opened_elsewhere("s1"), len(self.feeds)), (0, 0))

    def test_a_feed_of_a_backend_a_reload_removed_is_not_found_once_it_ends(self) -> None:
        self.linger("s1")
        del self.one.transports["alpha"]
        lost = UpstreamError("alpha", "unavailable", "connection lost")
        self.one.backend.heads["up-s1"].errback(lost)  # its retired transport closed
        self.clock.advance(BACKOFF_FIRST)  # then no transport to follow it on
        self.assertInStep()
        self.assertEqual((self.opened_elsewhere("s1"), len(self.feeds)), (0, 0))

    def test_shutdown_leaves_nothing_indexed(self) -> None:
        self.linger("s1", "s2")
        self.feeds.close()
        self.assertInStep()
        self.assertEqual(self.feeds._lingering_by_binding.snapshot(), {})
        self.assertEqual(self.feeds._lingering_by_user.snapshot(), {})

    def test_past_the_users_bound_the_users_first_to_linger_ends(self) -> None:
        """The per-user bound ends the feed it ended when it scanned every lingering
        feed: the first of the user's in the order they started lingering (a feed taken
        and left again starts anew), never another user's, found by the user's index."""
        self.one = FeedsOfOneBackend(self.clock, limits=StreamLimits(10, 2))
        self.feeds = self.one.feeds
        self.linger("s1")
        self.linger("b1", user="bob")
        self.linger("s2")
        self.one.stream("s1").close()  # s1 taken and left: now alice's newest
        self.assertInStep()
        lingering = [f for f in self.feeds._lingering.values() if f.principal.user[1] == "alice"]
        self.assertEqual([f.key[2] for f in lingering], ["up-s2", "up-s1"])  # as scanned
        self.linger("s3")
        self.assertEqual(self.one.backend.closed, ["up-s2"])
        self.linger("s4")
        self.assertEqual(self.one.backend.closed, ["up-s2", "up-s1"])
        by_user = self.feeds._lingering_by_user.snapshot()
        self.assertEqual(
            {user[1]: [key[2] for key in feeds] for user, feeds in by_user.items()},
            {"bob": ["up-b1"], "alice": ["up-s3", "up-s4"]},
        )
