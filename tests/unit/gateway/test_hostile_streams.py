"""What backends send on streams and replies, written to hurt (docs/security.md
"Backends' streams and replies"): each case gets a bounded, logged answer, never an
exception escaping into the reactor.

* a reply's JSON-RPC batch nested in itself (``Collector.sink``);
* requests whose id is no JSON-RPC id (an object, an array nested past the encoder's
  recursion): neither answered (a pong, a refusal would echo the id) nor relayed;
* aigw's answers refused by the backend, by the hundred;
* a client's ``Last-Event-ID`` naming another session's feed (the merged id itself,
  whatever the backends' ids or the client's header hold: ``tests/unit/sealed/test_event_id.py``);
* a backend that ends its GET stream at once, every time (the back-off holds).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import orjson
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from aigw.gateway.answers import UpstreamAnswers
from aigw.gateway.client_sessions import ClientSession
from aigw.gateway.exchange import Collector, Exchange
from aigw.gateway.linger import MAX_HELD_BYTES, RECENT, RECENT_BYTES, after
from aigw.gateway.relay import Relay
from aigw.gateway.streams import BACKOFF_FIRST, BACKOFF_MAX
from aigw.protocol import jsonrpc
from aigw.sealed.event_id import MAX_BACKEND_EVENT_ID
from aigw.sealed.request_id import RequestIdCodec
from aigw.sealed.sealer import Sealer
from aigw.upstream.api import Reply, UpstreamError
from tests.fakes import FakeTransport
from tests.unit.gateway.fake_feeds import FeedsOfOneBackend

ANSWER = {"jsonrpc": "2.0", "id": 1, "result": {}}
#: A GET stream's reply, which comes as its body ends.
ENDED = Reply(200, "up-s1", "text/event-stream")
#: Nesting that orjson still decodes (it stops at 1024) and that recursion in Python,
#: from a reactor's stack, does not survive.  ``jsonrpc.loads`` refuses it since it is
#: past ``MAX_WRITTEN_DEPTH``: the values are made with orjson itself, as another way in
#: (a stdio child's line, a future reader) might decode them.
DEEP = 1000


def nested(depth: int, inner: Any = None) -> Any:
    """``depth`` arrays, one inside the other."""
    return orjson.loads(b"[" * depth + jsonrpc.dumps(inner) + b"]" * depth)


def deep_id(method: str) -> Any:
    return orjson.loads(
        b'{"jsonrpc":"2.0","method":"%s","id":' % method.encode() + b"[" * DEEP + b"]" * DEEP + b"}"
    )


class BatchTests(SynchronousTestCase):
    def test_a_batch_nested_in_itself_is_no_message_and_raises_nothing(self) -> None:
        """JSON-RPC 2.0 §6: a batch is one array of messages; an array inside it is
        not a message (``elsewhere``'s, as any stray value), however deep."""
        others: list[Any] = []
        collector = Collector(1, others.append)
        collector.sink([nested(DEEP, ANSWER), ANSWER])
        self.assertEqual(collector.message, ANSWER)
        self.assertEqual(len(others), 1)


class InvalidIdTests(SynchronousTestCase):
    """JSON-RPC 2.0 §4: an id is a string, a number or null; MCP basic "Requests": a
    string or an integer.  A "request" with another id is no request: echoing its id
    in a pong or a refusal would write back whatever the backend nested in it."""

    def setUp(self) -> None:
        self.transport = FakeTransport("files")
        self.answers = UpstreamAnswers({"files": self.transport})

    def test_a_ping_or_request_with_an_id_that_is_no_id_is_not_answered(self) -> None:
        where = ("files", "s1", "2025-11-25")
        with capturedLogs() as events:
            for method in ("ping", "roots/list"):
                for message in (
                    deep_id(method),
                    {"jsonrpc": "2.0", "method": method, "id": {"a": 1}},
                    {"jsonrpc": "2.0", "method": method, "id": True},
                ):
                    self.assertFalse(self.answers.pinged(where, None, message))
                    self.assertFalse(self.answers.refused(where, None, message, "why", "r"))
        self.assertEqual(self.transport.requests, [])
        self.assertEqual([e for e in events if e.get("log_failure")], [])

    def test_a_relayed_request_with_an_id_that_is_no_id_is_dropped(self) -> None:
        exchange = SimpleNamespace(
            pinged=lambda *args: False, refuse=lambda *args: self.fail("refused")
        )
        relay = Relay(RequestIdCodec(Sealer.random()), cast(Exchange, exchange), cast(Any, None))
        session = SimpleNamespace(
            backends={},
            principal=None,
            sessionless=False,
            binding="b1",
            state=SimpleNamespace(client_capabilities=None),
        )
        emitted: list[Any] = []
        for message in (deep_id("roots/list"), {"jsonrpc": "2.0", "method": "x", "id": [1]}):
            relay.to_client(cast(ClientSession, session), "files", message, emitted.append)
        self.assertEqual(emitted, [])


class CancellationTests(SynchronousTestCase):
    def test_a_backends_cancellation_names_its_request_as_the_client_saw_it(self) -> None:
        """basic/utilities/cancellation: the notification names the request to cancel by
        the id its receiver got, which for a relayed request is the sealed one
        (``sealed/request_id.py``: wrapping is deterministic for this); an id this
        backend never sent names nothing the client has; one that is no id is left as
        it came, for the client to judge."""
        codec = RequestIdCodec(Sealer.random())
        exchange = SimpleNamespace(pinged=lambda *args: False)
        relay = Relay(codec, cast(Exchange, exchange), cast(Any, None))
        session = SimpleNamespace(
            backends={},
            principal=None,
            sessionless=False,
            binding="b1",
            log_level=None,
            state=SimpleNamespace(client_capabilities=None),
        )
        emitted: list[Any] = []
        ask = {"jsonrpc": "2.0", "id": 7, "method": "elicitation/create", "params": {}}
        relay.to_client(cast(ClientSession, session), "files", ask, emitted.append)
        for request_id in (7, "never-sent", {"an": "object"}):
            params = {"requestId": request_id, "reason": "changed its mind"}
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}
            relay.to_client(cast(ClientSession, session), "files", cancel, emitted.append)
        asked, *cancelled = emitted
        ids = [message["params"]["requestId"] for message in cancelled]
        self.assertEqual(ids[0], asked["id"])
        self.assertEqual(ids[1], codec.wrap("files", "never-sent", "b1"))
        self.assertEqual(ids[2], {"an": "object"})
        self.assertEqual(cancelled[0]["params"]["reason"], "changed its mind")


class Refusing(FakeTransport):
    """A backend that refuses every answer POSTed to it (500), until ``fixed``."""

    fixed = False

    async def respond(self, body: bytes, *args: Any, **kwargs: Any) -> None:
        if not self.fixed:
            raise UpstreamError(self.name, "http_error", "HTTP 500: refused", 500)
        await super().respond(body, *args, **kwargs)


class RefusedAnswerTests(SynchronousTestCase):
    def test_refused_answers_are_logged_once_until_one_is_taken(self) -> None:
        """A backend pinging for ever and refusing every pong costs one warning, not a
        line per ping; once an answer is taken, the next refusal is told again."""
        transport = Refusing("files")
        answers = UpstreamAnswers({"files": transport})
        where = ("files", "s1", None)
        with capturedLogs() as logged:
            for n in range(500):
                answers.pinged(where, None, {"jsonrpc": "2.0", "id": n, "method": "ping"})
            transport.fixed = True
            answers.pinged(where, None, {"jsonrpc": "2.0", "id": "ok", "method": "ping"})
            transport.fixed = False
            answers.pinged(where, None, {"jsonrpc": "2.0", "id": "again", "method": "ping"})
        warned = [formatEvent(e) for e in logged if e["log_level"].name == "warn"]
        self.assertEqual(len(warned), 2, warned)
        self.assertIn("HTTP 500", warned[0])


class BackOffTests(SynchronousTestCase):
    """A backend that answers the GET and ends the stream at once, every time (a 200
    that is not SSE, an SSE stream closed at once) is followed again after a back-off
    that doubles up to ``BACKOFF_MAX``, as one that fails (the Python SDK's client
    reconnects for ever once a second to such a backend: modelcontextprotocol/python-sdk
    #3257): only a stream that lasted, or one ended on purpose after an event id and a
    ``retry`` (SEP-1699's polling), resets it."""

    def test_streams_ending_at_once_are_followed_ever_more_slowly(self) -> None:
        clock = Clock()
        one = FeedsOfOneBackend(clock)
        one.stream("s1")
        gaps: list[float] = []
        last = clock.seconds()
        for _ in range(12):
            self.assertEqual(len(one.backend.opened), len(gaps) + 1)
            one.backend.heads["up-s1"].callback(ENDED)
            step = 0.0
            while len(one.backend.opened) == len(gaps) + 1:
                clock.advance(0.25)
                step += 0.25
                self.assertLessEqual(step, BACKOFF_MAX + 1, "followed again")
            gaps.append(clock.seconds() - last)
            last = clock.seconds()
        self.assertEqual(gaps[0], BACKOFF_FIRST)
        self.assertEqual(gaps[-1], BACKOFF_MAX)
        self.assertEqual(gaps, sorted(gaps))

    def retried(self, retry: int | None) -> tuple[Clock, FeedsOfOneBackend]:
        """A feed whose first stream read ``retry`` (milliseconds), then ended at once."""
        clock = Clock()
        one = FeedsOfOneBackend(clock)
        one.stream("s1")
        reader = SimpleNamespace(
            retry=retry, last_event_id=None, stop=lambda: None, pause=lambda: None
        )
        one.backend.on_reader["up-s1"](reader)
        one.backend.heads["up-s1"].callback(ENDED)
        return clock, one

    def test_the_backends_retry_is_waited(self) -> None:
        """2025-11-25 basic/transports "Sending Messages to the Server": "the client MUST
        respect the retry field, waiting the given number of milliseconds before
        attempting to reconnect"."""
        clock, one = self.retried(5000)
        clock.advance(4.9)
        self.assertEqual(len(one.backend.opened), 1)
        clock.advance(0.1)
        self.assertEqual(len(one.backend.opened), 2)

    def test_a_retry_shorter_than_the_back_off_does_not_shorten_it(self) -> None:
        clock, one = self.retried(0)
        clock.advance(BACKOFF_FIRST - 0.01)
        self.assertEqual(len(one.backend.opened), 1)
        clock.advance(0.01)
        self.assertEqual(len(one.backend.opened), 2)

    def test_a_retry_past_the_longest_back_off_waits_that_long(self) -> None:
        clock, one = self.retried(10**17)  # three million years
        clock.advance(BACKOFF_MAX)
        self.assertEqual(len(one.backend.opened), 2)

    def polled(self, retry: int) -> list[float]:
        """The gaps between the GETs of a backend that ends each stream on purpose,
        once it sent an event id and ``retry`` (SEP-1699's polling)."""
        clock = Clock()
        one = FeedsOfOneBackend(clock)
        one.stream("s1")
        gaps: list[float] = []
        for n in range(6):
            reader = SimpleNamespace(
                retry=retry, last_event_id=f"p-{n}", stop=lambda: None, pause=lambda: None
            )
            one.backend.on_reader["up-s1"](reader)
            one.backend.heads["up-s1"].callback(ENDED)
            started = clock.seconds()
            while len(one.backend.opened) == n + 1:
                clock.advance(0.25)
            gaps.append(clock.seconds() - started)
        return gaps

    def test_a_backend_polled_on_purpose_is_followed_after_its_retry_each_time(self) -> None:
        """2025-11-25 basic/transports (SEP-1699): a server MAY close the stream after an
        event id; the client reconnects after ``retry``, each time, not ever more slowly."""
        self.assertEqual(self.polled(2000), [2.0] * 6)

    def test_a_polled_backend_asking_for_no_wait_gets_the_first_back_off(self) -> None:
        self.assertEqual(self.polled(0), [BACKOFF_FIRST] * 6)

    def test_a_stream_that_lasted_resets_the_back_off(self) -> None:
        clock = Clock()
        one = FeedsOfOneBackend(clock)
        one.stream("s1")
        for _ in range(6):
            opened = len(one.backend.opened)
            one.backend.heads["up-s1"].callback(ENDED)
            while len(one.backend.opened) == opened:
                clock.advance(0.25)
        clock.advance(BACKOFF_MAX * 2)  # the last stream lasts a while
        one.backend.heads["up-s1"].callback(ENDED)
        clock.advance(BACKOFF_FIRST)
        self.assertEqual(len(one.backend.opened), 8)


def big(n: int, size: int) -> dict[str, Any]:
    """A notification of about ``size`` bytes as aigw writes it."""
    params = {"level": "info", "data": "m" * size, "n": n}
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": params}


def written(held: Any) -> int:
    return sum(len(jsonrpc.dumps(message)) for message, _ in held)


class FeedMemoryTests(SynchronousTestCase):
    """What a feed keeps of a backend's messages is bounded in bytes, not only in
    messages: ``RECENT`` and ``MAX_HELD`` messages of ``max_message_bytes`` (16 MiB by
    default) would be 256 MiB per feed and 1.6 GB per lingering feed."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.one = FeedsOfOneBackend(self.clock)
        self.stream = self.one.stream("s1")
        self.reader = SimpleNamespace(
            retry=None, last_event_id=None, stop=lambda: None, pause=lambda: None
        )
        self.one.backend.on_reader["up-s1"](self.reader)

    def send(self, n: int, size: int) -> None:
        self.reader.last_event_id = f"ev-{n}"
        self.one.backend.deliver["up-s1"](big(n, size))

    def test_what_a_feed_keeps_to_send_again_is_bounded_in_bytes(self) -> None:
        feed = self.stream._feeds[0]
        for n in range(RECENT):
            self.send(n, 200 * 1024)
        self.assertLessEqual(written(feed.recent), RECENT_BYTES)
        self.assertEqual(len(feed.recent), RECENT_BYTES // (200 * 1024))
        last = feed.recent[-1][1]
        # A message past the budget is not kept, nor what came before it: a stream
        # resuming from before it is the backend's to replay (``after`` finds no id).
        self.send(99, RECENT_BYTES + 1)
        self.assertEqual(len(feed.recent), 0)
        self.assertIsNone(after(feed.recent, last))

    def test_what_a_lingering_feed_holds_is_bounded_in_bytes(self) -> None:
        self.stream.close()  # the feed lingers
        for n in range(40):
            self.send(n, 1024 * 1024)
        feed = self.one.feeds._lingering[next(iter(self.one.feeds._lingering))]
        assert feed.lingering is not None
        self.assertLessEqual(written(feed.lingering.held), MAX_HELD_BYTES)
        self.assertEqual(self.one.feeds.dropped, 40 - len(feed.lingering.held))
        # The newest is held whatever its size: a message is at most max_message_bytes.
        self.send(41, MAX_HELD_BYTES + 1)
        self.assertEqual(len(feed.lingering.held), 1)


class LongEventIdTests(SynchronousTestCase):
    """A backend's own event id goes back to it as ``Last-Event-ID`` when its stream is
    opened again, but only one the merged id could carry (``carried``): one as long as
    an event (``max_message_bytes``) in a header would be refused by the backend's HTTP
    server at every reopening, and the stream lost for good."""

    def reopened_after(self, event_id: str) -> tuple[FeedsOfOneBackend, list[str]]:
        """Two sessions' feeds of one backend, each stream ended twice after an event
        named ``event_id``: what the backend was asked to resume from, and the warnings."""
        clock = Clock()
        one = FeedsOfOneBackend(clock)
        with capturedLogs() as events:
            for session in ("s1", "s2"):
                one.stream(session)
                for _ in range(2):
                    reader = SimpleNamespace(
                        retry=None, last_event_id=event_id, stop=lambda: None, pause=lambda: None
                    )
                    one.backend.on_reader[f"up-{session}"](reader)
                    one.backend.deliver[f"up-{session}"](big(1, 10))
                    opened = len(one.backend.opened)
                    one.backend.heads[f"up-{session}"].callback(
                        Reply(200, f"up-{session}", "text/event-stream")
                    )
                    while len(one.backend.opened) == opened:
                        clock.advance(0.25)
        return one, [formatEvent(event) for event in events if event["log_level"].name == "warn"]

    def test_a_short_id_resumes_the_backends_stream(self) -> None:
        one, warned = self.reopened_after("e" * MAX_BACKEND_EVENT_ID)
        self.assertEqual(one.backend.resumed_from, ([None] + ["e" * MAX_BACKEND_EVENT_ID] * 2) * 2)
        self.assertEqual(warned, [])

    def test_an_id_too_long_to_carry_opens_the_stream_anew_told_once(self) -> None:
        one, warned = self.reopened_after("e" * (MAX_BACKEND_EVENT_ID + 1) * 1000)
        self.assertEqual(one.backend.resumed_from, [None] * 6)
        self.assertEqual(len(warned), 1)  # for the backend, not for each session
        self.assertIn("too long to resume from", warned[0])
        self.assertIn(str((MAX_BACKEND_EVENT_ID + 1) * 1000), warned[0])


class ForgedResumptionTests(SynchronousTestCase):
    def test_a_forged_id_never_takes_another_sessions_feed(self) -> None:
        """Feeds are keyed by the client's session (``Feeds.key``): a stream of another
        session, of the same user or another, resuming from an event id of this one's
        feed gets none of what it delivered or holds, and leaves it lingering."""
        clock = Clock()
        one = FeedsOfOneBackend(clock)
        first = one.stream("s1")
        reader = SimpleNamespace(retry=None, last_event_id="ev-1", stop=lambda: None)
        one.backend.on_reader["up-s1"](reader)
        one.backend.deliver["up-s1"](big(1, 10))
        first.close()  # lingers, with ev-1 among what it delivered
        one.backend.deliver["up-s1"](big(2, 10))  # held for s1's next stream
        for user in ("alice", "mallory"):
            received: list[Any] = []
            one.stream("s2", user=user, received=received, resumes_from="ev-1").close()
            self.assertEqual(received, [])
        self.assertEqual(len(one.feeds._lingering_by_binding.of(first.session.binding)), 1)
