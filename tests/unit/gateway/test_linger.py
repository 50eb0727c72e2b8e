"""An upstream stream left open for the next client stream of the same upstream session.

A client closing and reopening its GET stream or its 2026-07-28 listen must not make
aigw close the backend's stream and open another at once (SDK servers answer 409
while they still hold the first: 2025-11-25 basic/transports "Listening for Messages
from the Server"); what the backend sends meanwhile reaches the next stream.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig, ServerConfig, SessionsConfig
from aigw.gateway.linger import MAX_HELD, RECENT, Linger, after
from aigw.gateway.streams import CLOSE_SETTLE, CLOSE_WAIT
from aigw.protocol import jsonrpc
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import (
    Collect,
    GatewayTestCase,
    hs256_auth,
    post_listen,
    sse_messages,
    token,
)
from tests.unit.memory import run

LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


#: A backend's request on its stream (2025-11-25 client/roots).
ROOTS = {"jsonrpc": "2.0", "id": 7, "method": "roots/list"}
#: A backend's ping (basic/utilities/ping), which aigw answers itself.
PING = {"jsonrpc": "2.0", "id": 8, "method": "ping"}
PONG = {"jsonrpc": "2.0", "id": 8, "result": {}}


def updated(n: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": n}}


class LingerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.expired: list[bool] = []
        self.linger = Linger(self.clock, 5.0, lambda: self.expired.append(True), "ev-1")

    def test_it_expires_after_its_seconds(self) -> None:
        self.clock.advance(4.9)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.expired, [True])

    def test_ending_it_stops_the_timer_and_gives_what_was_held_oldest_first(self) -> None:
        self.linger.hold("a", "ev-2")
        self.linger.hold("b", None)
        self.assertEqual(self.linger.end(), [("a", "ev-2"), ("b", None)])
        self.clock.advance(10)
        self.assertEqual((self.expired, self.clock.getDelayedCalls()), ([], []))

    def test_past_the_bound_the_oldest_are_dropped_and_counted(self) -> None:
        dropped = [self.linger.hold(n, f"ev-{n}") for n in range(MAX_HELD + 3)]
        self.assertEqual(dropped, [[]] * MAX_HELD + [[(0, "ev-0")], [(1, "ev-1")], [(2, "ev-2")]])
        held = self.linger.end()
        self.assertEqual((len(held), held[0][0], self.linger.dropped), (MAX_HELD, 3, 3))

    def test_an_event_id_alone_dropped_past_the_bound_is_no_message_lost(self) -> None:
        """A held priming id (message None) is superseded by the ids held after it."""
        dropped = [self.linger.hold(None, "p-0")]
        dropped += [self.linger.hold(n, f"ev-{n}") for n in range(1, MAX_HELD + 2)]
        self.assertEqual(dropped, [[]] * (MAX_HELD + 1) + [[(1, "ev-1")]])
        self.assertEqual((self.linger.end()[0], self.linger.dropped), ((2, "ev-2"), 1))

    def test_what_came_after_an_id_is_what_followed_the_last_message_bearing_it(
        self,
    ) -> None:
        """A message without an id of its own bears the one before (SSE's last event id)."""
        recent = [("a", "ev-1"), ("b", "ev-2"), ("c", "ev-2"), ("d", "ev-3")]
        self.assertEqual(after(recent, "ev-1"), recent[1:])
        self.assertEqual(after(recent, "ev-2"), recent[3:])
        self.assertEqual(after(recent, "ev-3"), [])
        self.assertIsNone(after(recent, "ev-0"))


class LingerTestCase(GatewayTestCase):
    async def start(self, linger: float = 5.0, **overrides: Any) -> None:
        self.alpha = FakeUpstream(tools=["echo"])
        self.alpha.get_status = 200
        backend = BackendConfig(
            name="alpha", url=self.start_upstream(self.alpha), timeout=5.0, stream_linger=linger
        )
        await self.start_gateway_with(backend, **overrides)
        self.feeds = self.service.gateway.feeds

    async def listen(self, rid: str, user: str | None = None) -> Collect:
        """A listen for list changes, acknowledged; its body read into ``.chunks``."""
        bearer = token(user, self.reactor.seconds()) if user else None
        response = await post_listen(self.http, self.url, {"toolsListChanged": True}, rid, bearer)
        self.assertEqual(response.code, 200)
        reader = Collect([])
        response.deliverBody(reader)
        await self.until(lambda: b"acknowledged" in b"".join(reader.chunks))
        return reader

    async def close(self, reader: Collect) -> None:
        """The client closes the stream; aigw has seen it go once its slot is free."""
        limits = self.service.gateway.stream_limits
        before = limits.total
        reader.transport.stopProducing()  # type: ignore[union-attr]
        await self.until(lambda: limits.total == before - 1)

    async def get_stream(self, session: str, last_event_id: str | None = None) -> Collect:
        response = await self.open_stream(session, last_event_id)
        self.assertEqual(response.code, 200)
        reader = Collect([])
        response.deliverBody(reader)
        return reader

    async def resume(self, session: str, alpha_id: str) -> Collect:
        """A GET stream resuming from alpha's event ``alpha_id``, once a resumed upstream
        stream would have been asked for (``CLOSE_SETTLE`` after the lingering one closed)."""
        reader = await self.get_stream(session, self.merged_id(session, {"alpha": alpha_id}))
        await self.network.sleep(CLOSE_SETTLE)
        return reader

    def methods(self, reader: Collect) -> list[str]:
        return [m.get("method") for m in sse_messages(b"".join(reader.chunks))]


class ListenLingerTests(LingerTestCase):
    @run
    async def test_a_reopened_listen_takes_the_upstream_stream_and_what_came_meanwhile(
        self,
    ) -> None:
        await self.start()
        first = await self.listen("L1")
        await self.until(lambda: self.alpha.stream_requests)
        await self.close(first)
        self.alpha.push(LIST_CHANGED)  # nobody listens: held
        await self.until(lambda: self.feeds.dropped == 0)
        again = await self.listen("L2")
        await self.until(lambda: "notifications/tools/list_changed" in self.methods(again))
        self.assertEqual(self.methods(again)[0], "notifications/subscriptions/acknowledged")
        self.assertEqual((len(self.alpha.stream_requests), self.alpha.streams_closed), (1, []))
        await self.close(again)

    @run
    async def test_the_upstream_stream_closes_when_no_listen_came_within_the_linger(
        self,
    ) -> None:
        await self.start(linger=2.0)
        await self.close(await self.listen("L1"))
        await self.until(lambda: self.alpha.streams_closed == [])
        await self.network.sleep(2.5)
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests)
        self.assertEqual(len(self.feeds), 0)
        again = await self.listen("L2")
        await self.until(lambda: len(self.alpha.stream_requests) == 2)
        await self.close(again)

    @run
    async def test_stream_linger_0_closes_the_upstream_stream_at_once(self) -> None:
        await self.start(linger=0)
        first = await self.listen("L1")
        await self.until(lambda: self.alpha.stream_requests)
        await self.close(first)
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests)
        self.assertEqual(len(self.feeds), 0)

    @run
    async def test_another_users_listen_never_gets_a_users_lingering_stream(self) -> None:
        """The feed's key holds the user: bob's listen opens bob's own upstream stream,
        and what alice's backend sent is held for alice."""
        await self.start(auth=hs256_auth())
        await self.close(await self.listen("A1", "alice"))
        await self.until(lambda: len(self.alpha.stream_requests) == 1)
        self.alpha.push(LIST_CHANGED)
        bob = await self.listen("B1", "bob")
        await self.until(lambda: len(self.alpha.stream_requests) == 2)
        alice = await self.listen("A2", "alice")
        await self.until(lambda: "notifications/tools/list_changed" in self.methods(alice))
        self.assertNotIn("notifications/tools/list_changed", self.methods(bob))
        self.assertEqual(len(self.alpha.stream_requests), 2)
        for reader in (alice, bob):
            await self.close(reader)


class GetStreamLingerTests(LingerTestCase):
    async def closed_after(self, session: str, event_id: str) -> str:
        """A GET stream that got the backend's ``event_id``, then closed; its last id."""
        first = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        self.alpha.push(LIST_CHANGED, event_id)
        await self.until(lambda: b"list_changed" in b"".join(first.chunks))
        text = b"".join(first.chunks).decode()
        last = [line[4:] for line in text.splitlines() if line.startswith("id: ")][-1]
        await self.close(first)
        return last

    @run
    async def test_resuming_where_it_left_off_takes_what_was_held(self) -> None:
        await self.start()
        session = await self.initialize()
        last = await self.closed_after(session, "ev-1")
        self.alpha.push(updated(2), "ev-2")
        again = await self.get_stream(session, last)
        await self.until(lambda: "notifications/resources/updated" in self.methods(again))
        text = b"".join(again.chunks).decode()
        resumed = [line[4:] for line in text.splitlines() if line.startswith("id: ")][-1]
        self.assertEqual(self.last_ids(session, resumed), {"alpha": "ev-2"})
        self.assertEqual(len(self.alpha.stream_requests), 1)
        await self.close(again)

    @run
    async def test_resuming_from_a_little_before_gets_what_it_lost_again_from_aigw(
        self,
    ) -> None:
        """The last messages the closed stream got (``RECENT``) are sent again to a
        stream resuming from one of them, then what was held, each once and in order:
        the backend is not asked (it would answer 409 while it holds the stream)."""
        await self.start()
        session = await self.initialize()
        self.alpha.one_stream = True
        first = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        for round_ in range(3):
            for n in range(1, 4):
                self.alpha.push(updated(round_ * 10 + n), f"ev-{round_}.{n}")
            await self.until(lambda first=first: len(self.updates(first)) == 3)  # type: ignore[misc]
            await self.close(first)
            self.alpha.push(updated(round_ * 10 + 4), f"ev-{round_}.4")  # held
            # The client lost the last two: it resumes from the first.
            first = await self.resume(session, f"ev-{round_}.1")
            expected = [round_ * 10 + n for n in (2, 3, 4)]
            await self.until(lambda first=first, e=expected: self.updates(first) == e)  # type: ignore[misc]
            text = b"".join(first.chunks).decode()
            last = [line[4:] for line in text.splitlines() if line.startswith("id: ")][-1]
            self.assertEqual(self.last_ids(session, last), {"alpha": f"ev-{round_}.4"})
            first.chunks.clear()
        self.assertEqual((len(self.alpha.stream_requests), self.alpha.conflicts), (1, []))
        await self.close(first)

    @run
    async def test_resuming_from_before_the_recent_messages_asks_the_backend(self) -> None:
        await self.start()
        session = await self.initialize()
        first = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        for n in range(RECENT + 1):
            self.alpha.push(updated(n), f"ev-{n}")
        await self.until(lambda: len(self.updates(first)) == RECENT + 1)
        await self.close(first)
        again = await self.resume(session, "ev-0")  # kept no longer
        await self.until(lambda: len(self.alpha.stream_requests) == 2)
        self.assertEqual(self.alpha.stream_requests[1].getHeader(b"last-event-id"), b"ev-0")
        self.assertEqual(self.updates(again), [])  # the backend's to replay
        await self.close(again)

    @run
    async def test_resuming_from_before_what_was_held_asks_the_backend(self) -> None:
        """basic/transports "Resumability and Redelivery": the backend replays from there."""
        await self.start()
        session = await self.initialize()
        await self.closed_after(session, "ev-1")
        again = await self.resume(session, "ev-0")
        await self.until(lambda: len(self.alpha.stream_requests) == 2)
        self.assertEqual(self.alpha.stream_requests[1].getHeader(b"last-event-id"), b"ev-0")
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests[:1])
        await self.close(again)

    def updates(self, reader: Collect) -> list[Any]:
        return [
            m["params"]["uri"]
            for m in sse_messages(b"".join(reader.chunks))
            if m.get("method") == "notifications/resources/updated"
        ]

    @run
    async def test_resuming_from_before_what_was_held_waits_for_the_held_stream_to_close(
        self,
    ) -> None:
        """An SDK server answers 409 to a GET while it holds another of the session
        (basic/transports "Listening for Messages from the Server"): the resumed stream
        is asked for once the lingering one is closed, each time, and gets what the
        backend sends from there once (what was held is the backend's to replay)."""
        await self.start()
        self.alpha.one_stream = True
        session = await self.initialize()
        await self.closed_after(session, "ev-1")
        for n in range(1, 4):
            self.alpha.push(updated(n), f"ev-{n}.held")
            # The last stream got ev-n: this one resumes from before it.
            again = await self.resume(session, f"ev-{n - 1}")
            await self.until(lambda n=n: len(self.alpha.stream_requests) == n + 1)  # type: ignore[misc]
            resumed = self.alpha.stream_requests[n]
            self.assertEqual(resumed.getHeader(b"last-event-id"), f"ev-{n - 1}".encode())
            self.assertEqual(self.alpha.streams_closed, self.alpha.stream_requests[:n])
            self.alpha.push(updated(n * 10), f"ev-{n + 1}")  # the replay (or a new one)
            await self.until(lambda again=again, n=n: self.updates(again) == [n * 10])  # type: ignore[misc]
            await self.close(again)
        self.assertEqual(self.alpha.conflicts, [])

    @run
    async def test_a_closed_feed_waiting_to_follow_its_stream_again_ends_at_once(
        self,
    ) -> None:
        """Its back-off is cut short: the next stream need not wait for it."""
        await self.start()
        self.alpha.get_status = 500  # the stream fails: followed again after a back-off
        session = await self.initialize()
        await self.close(await self.get_stream(session))
        self.alpha.get_status = 200
        again = await self.resume(session, "ev-0")  # the back-off is longer
        await self.until(lambda: len(self.alpha.stream_requests) == 1)
        await self.close(again)

    @run
    async def test_a_stream_whose_head_never_came_is_aborted_as_its_feed_closes(
        self,
    ) -> None:
        """Its request is cancelled, so the resumed stream does not wait ``CLOSE_WAIT``
        for it: only ``CLOSE_SETTLE``, as after any closed stream."""
        await self.start()
        self.alpha.get_hold = Deferred()  # the backend never answers the stream's GET
        session = await self.initialize()
        await self.close(await self.get_stream(session))
        await self.until(lambda: len(self.alpha.stream_requests) == 1)
        again = await self.get_stream(session, self.merged_id(session, {"alpha": "ev-0"}))
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests[:1])
        await self.network.sleep(CLOSE_SETTLE)
        self.assertLess(CLOSE_SETTLE, CLOSE_WAIT)
        await self.until(lambda: len(self.alpha.stream_requests) == 2)
        self.alpha.get_hold.callback(None)
        await self.close(again)

    @run
    async def test_a_stream_whose_head_never_came_is_aborted_as_its_linger_expires(
        self,
    ) -> None:
        """The next stream of the session then opens without waiting for it."""
        await self.start(linger=1.0)
        self.alpha.get_hold = Deferred()  # the closing stream's GET is never answered
        session = await self.initialize()
        await self.close(await self.get_stream(session))
        await self.until(lambda: len(self.alpha.stream_requests) == 1)
        await self.network.sleep(1.0)  # the linger expires: the feed closes
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests[:1])
        again = await self.get_stream(session)
        await self.until(lambda: len(self.alpha.stream_requests) == 2)
        self.alpha.get_hold.callback(None)
        await self.close(again)

    @run
    async def test_another_sessions_get_stream_opens_its_own(self) -> None:
        await self.start()
        await self.closed_after(await self.initialize(), "ev-1")
        self.alpha.push(updated(2), "ev-2")
        other = await self.get_stream(await self.initialize())
        await self.until(lambda: len(self.alpha.stream_requests) == 2)
        self.assertNotIn("notifications/resources/updated", self.methods(other))
        await self.close(other)

    @run
    async def test_more_than_the_bound_meanwhile_drops_the_oldest_counted(self) -> None:
        await self.start()
        session = await self.initialize()
        last = await self.closed_after(session, "ev-1")
        for n in range(MAX_HELD + 5):
            self.alpha.push(updated(n), f"ev-u{n}")
        await self.until(lambda: self.feeds.dropped == 5)  # counted as they are dropped
        again = await self.get_stream(session, last)
        await self.until(lambda: self.methods(again).count("notifications/resources/updated"))
        uris = [
            m["params"]["uri"]
            for m in sse_messages(b"".join(again.chunks))
            if m.get("method") == "notifications/resources/updated"
        ]
        self.assertEqual(uris, list(range(5, MAX_HELD + 5)))
        self.assertEqual(self.feeds.dropped, 5)
        await self.close(again)


class LingerBoundTests(LingerTestCase):
    """Lingering streams hold upstream sockets no client stream pays for: bounded like
    client streams, the oldest closed first."""

    @run
    async def test_a_user_keeps_at_most_max_streams_per_user_lingering(self) -> None:
        await self.start(sessions=SessionsConfig(max_streams_per_user=2))
        for n in range(3):  # three sessions of the one user (auth: none)
            reader = await self.get_stream(await self.initialize())
            await self.until(lambda n=n: len(self.alpha.stream_requests) == n + 1)  # type: ignore[misc]
            await self.close(reader)
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests[:1])

    @run
    async def test_the_process_keeps_at_most_max_streams_lingering(self) -> None:
        server = attrs.evolve(ServerConfig(), max_streams=2)
        await self.start(auth=hs256_auth(), server=server)
        for n in range(3):  # three users' listens
            await self.close(await self.listen(f"L{n}", f"user-{n}"))
            await self.until(lambda n=n: len(self.alpha.stream_requests) == n + 1)  # type: ignore[misc]
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests[:1])


class HeldRequestTests(LingerTestCase):
    """A backend's request held for the next client stream must be answered by someone:
    one that no client stream takes is answered with an error at once (``linger.py``),
    on the upstream session's POST, once."""

    def answers_to(self, request_id: int) -> list[tuple[dict[str, list[str]], Any]]:
        """What alpha received as answers to its request ``request_id``, with headers."""
        return [
            (headers, body)
            for headers, body in self.alpha.received
            if isinstance(body, dict) and body.get("id") == request_id and "method" not in body
        ]

    async def left(self, capabilities: dict[str, Any] | None = None) -> str:
        """A session whose GET stream was opened, then closed: alpha's stream lingers."""
        session = await self.initialize(capabilities=capabilities)
        reader = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        await self.close(reader)
        return session

    def assert_refused(self, reason: str) -> None:
        """Alpha's request got one error answer, on its own upstream session."""
        ((headers, body),) = self.answers_to(7)
        self.assertEqual(body["error"]["code"], jsonrpc.METHOD_NOT_FOUND)
        self.assertEqual(body["error"]["data"], {"reason": reason})
        self.assertTrue(body["error"]["message"].startswith("roots/list: "))
        upstream_session = self.alpha.stream_requests[0].getHeader(b"mcp-session-id").decode()
        self.assertEqual(headers["mcp-session-id"], [upstream_session])

    @run
    async def test_a_request_held_when_the_linger_expires_is_answered_with_an_error(
        self,
    ) -> None:
        await self.start(linger=2.0)
        await self.left()
        self.alpha.push(LIST_CHANGED)
        self.alpha.push(ROOTS)
        await self.network.sleep(2.5)
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests)
        await self.until(lambda: self.answers_to(7))
        self.assert_refused("no_client_stream")
        answers = [b for _, b in self.alpha.received if isinstance(b, dict) and "method" not in b]
        self.assertEqual(len(answers), 1)  # the notification is not answered

    @run
    async def test_a_users_request_is_answered_with_aigws_credentials_not_the_users(
        self,
    ) -> None:
        """The error goes as a client's answer would: aigw's credentials toward the
        backend (none configured here), never the user's bearer token."""
        await self.start(linger=2.0, auth=hs256_auth())
        await self.close(await self.listen("A1", "alice"))
        await self.until(lambda: self.alpha.stream_requests)
        self.alpha.push(ROOTS)
        await self.network.sleep(2.5)
        await self.until(lambda: self.answers_to(7))
        ((headers, body),) = self.answers_to(7)
        self.assertEqual(body["error"]["data"], {"reason": "no_client_stream"})
        self.assertNotIn("authorization", headers)

    @run
    async def test_a_request_dropped_past_the_bound_is_answered_at_once(self) -> None:
        await self.start()
        session = await self.left({"roots": {}})
        self.alpha.push(ROOTS)
        for n in range(MAX_HELD):
            self.alpha.push(updated(n))
        await self.until(lambda: self.answers_to(7))
        self.assert_refused("stream_linger_full")
        self.assertEqual(self.feeds.dropped, 1)
        again = await self.get_stream(session)  # takes the feed: the request is not there
        await self.until(lambda: self.methods(again).count("notifications/resources/updated"))
        self.assertNotIn("roots/list", self.methods(again))
        await self.close(again)
        self.assertEqual(len(self.answers_to(7)), 1)

    @run
    async def test_a_request_handed_to_a_client_is_answered_by_it_only(self) -> None:
        await self.start(linger=2.0)
        session = await self.left({"roots": {}})
        self.alpha.push(ROOTS)
        again = await self.get_stream(session)
        await self.until(lambda: "roots/list" in self.methods(again))
        asked = next(m for m in sse_messages(b"".join(again.chunks)) if "id" in m)
        answer = {"jsonrpc": "2.0", "id": asked["id"], "result": {"roots": []}}
        response, _ = await self.post(answer, session, {"MCP-Protocol-Version": "2025-11-25"})
        self.assertEqual(response.code, 202)
        await self.until(lambda: self.answers_to(7))
        await self.close(again)
        await self.network.sleep(2.5)  # the next linger expires: nothing more is answered
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests)
        self.assertEqual([b for _, b in self.answers_to(7)], [{**answer, "id": 7}])

    @run
    async def test_a_request_handed_to_a_client_that_did_not_declare_it_is_refused(
        self,
    ) -> None:
        """As on a stream that was never left: the capability named (relay.py)."""
        await self.start()
        session = await self.left()  # declares no roots
        self.alpha.push(ROOTS)
        self.alpha.push(LIST_CHANGED)
        again = await self.get_stream(session)
        await self.until(lambda: "notifications/tools/list_changed" in self.methods(again))
        await self.until(lambda: self.answers_to(7))
        ((_, body),) = self.answers_to(7)
        self.assertEqual(body["error"]["code"], jsonrpc.METHOD_NOT_FOUND)
        self.assertEqual(
            body["error"]["data"], {"reason": "client_capability", "capability": "roots"}
        )
        self.assertNotIn("roots/list", self.methods(again))
        await self.close(again)

    @run
    async def test_a_request_handed_to_a_listen_is_refused(self) -> None:
        """A 2026-07-28 client takes no server-to-client requests (streamable-http
        "Receiving Messages"): its listen refuses what the lingering stream held."""
        await self.start()
        await self.close(await self.listen("L1"))
        await self.until(lambda: self.alpha.stream_requests)
        self.alpha.push(ROOTS)
        self.alpha.push(LIST_CHANGED)
        again = await self.listen("L2")
        await self.until(lambda: "notifications/tools/list_changed" in self.methods(again))
        await self.until(lambda: self.answers_to(7))
        ((_, body),) = self.answers_to(7)
        self.assertEqual(body["error"]["code"], jsonrpc.METHOD_NOT_FOUND)
        self.assertEqual(body["error"]["data"], {"reason": "client_revision"})
        self.assertIn("cannot reach a 2026-07-28 client", body["error"]["message"])
        await self.close(again)

    @run
    async def test_a_ping_on_a_lingering_stream_is_answered_at_once_not_held(self) -> None:
        """basic/utilities/ping "respond promptly": not after the linger, not refused."""
        await self.start(linger=2.0)
        session = await self.left()
        self.alpha.push(PING)
        await self.until(lambda: self.answers_to(8))
        ((headers, body),) = self.answers_to(8)
        self.assertEqual(body, PONG)
        upstream_session = self.alpha.stream_requests[0].getHeader(b"mcp-session-id").decode()
        self.assertEqual(headers["mcp-session-id"], [upstream_session])
        self.assertEqual(self.alpha.streams_closed, [])  # still lingering
        self.alpha.push(LIST_CHANGED)
        again = await self.get_stream(session)
        await self.until(lambda: "notifications/tools/list_changed" in self.methods(again))
        self.assertNotIn("ping", self.methods(again))
        await self.close(again)
        self.assertEqual(len(self.answers_to(8)), 1)

    @run
    async def test_a_backends_priming_id_writes_nothing_on_a_listen(self) -> None:
        """A 2026-07-28 listen carries no event ids: a 2025-11-25 backend priming its
        stream writes no event of an id and empty data there; its next message comes
        without an id."""
        await self.start()
        listening = await self.listen("L1")
        await self.until(lambda: self.alpha.stream_requests)
        self.alpha.prime("p-1")
        self.alpha.push(LIST_CHANGED, "ev-2")
        await self.until(lambda: "notifications/tools/list_changed" in self.methods(listening))
        self.assertNotIn(b"id:", b"".join(listening.chunks))
        await self.close(listening)

    @run
    async def test_a_ping_on_a_listen_is_answered_not_refused(self) -> None:
        """2026-07-28: a listen takes no server requests, but SEP-2260 exempts ping,
        and aigw answers it itself, lingering or not."""
        await self.start()
        listening = await self.listen("L1")
        await self.until(lambda: self.alpha.stream_requests)
        self.alpha.push(PING)
        await self.until(lambda: self.answers_to(8))
        self.assertEqual([b for _, b in self.answers_to(8)], [PONG])
        self.assertNotIn("ping", self.methods(listening))
        await self.close(listening)
        self.alpha.push({**PING, "id": 9})
        await self.until(lambda: self.answers_to(9))
        self.assertEqual([b for _, b in self.answers_to(9)], [{**PONG, "id": 9}])

    async def resumed_from_before(self, event_id: str | None) -> Collect:
        """A request held (with ``event_id``), then a GET stream resuming from before it."""
        session = await self.left({"roots": {}})
        self.alpha.push(ROOTS, event_id)
        self.alpha.push(LIST_CHANGED)  # after the request: it is held by now
        again = await self.resume(session, "ev-0")
        await self.until(lambda: len(self.alpha.stream_requests) == 2)
        await self.until(lambda: self.alpha.streams_closed == self.alpha.stream_requests[:1])
        return again

    @run
    async def test_resuming_from_before_a_held_request_leaves_it_to_the_replay(self) -> None:
        """basic/transports "Resumability and Redelivery": a request that came with an
        event id is sent again by the backend to the stream resuming before it, so it
        is not refused as well."""
        await self.start()
        again = await self.resumed_from_before("ev-7")
        await self.close(again)
        self.assertEqual(self.answers_to(7), [])

    @run
    async def test_resuming_from_before_a_request_of_a_stream_without_ids_refuses_it(
        self,
    ) -> None:
        """Without event ids the backend cannot send it again: it is answered."""
        await self.start()
        again = await self.resumed_from_before(None)
        await self.until(lambda: self.answers_to(7))
        self.assert_refused("no_client_stream")
        await self.close(again)
