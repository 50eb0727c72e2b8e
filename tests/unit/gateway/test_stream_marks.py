"""A GET stream's priming event and its ``retry`` (MCP 2025-11-25 basic/transports, SEP-1699).

A session's GET stream opens with an event of an id and empty data, so a client that
loses it before any message reconnects with that id as ``Last-Event-ID`` and resumes
where the stream began; when aigw ends the stream itself (a stop), the last event says
again where the stream is and how long to wait (``retry``, milliseconds) before
reconnecting.  2026-07-28 listens are not resumable, and POST replies are not resumed by
aigw: neither is primed.
"""

from __future__ import annotations

import attrs

from aigw.config import BackendConfig, SessionsConfig
from aigw.protocol.sse import Event, SSEParser
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import Collect, GatewayTestCase, post_listen, sse_messages
from tests.unit.memory import run

LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


def updated(n: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": n}}


class StreamMarkTests(GatewayTestCase):
    async def start(self, stream_linger: float = 5.0, **sessions: object) -> str:
        """aigw in front of ``alpha`` (which has a GET stream); a session's id."""
        self.alpha = FakeUpstream(tools=["echo"])
        self.alpha.get_status = 200
        url = self.start_upstream(self.alpha)
        backend = BackendConfig(name="alpha", url=url, timeout=5.0, stream_linger=stream_linger)
        await self.start_gateway_with(backend, sessions=SessionsConfig(**sessions))  # type: ignore[arg-type]
        return await self.initialize()

    async def get_stream(self, session: str, last_event_id: str | None = None) -> Collect:
        response = await self.open_stream(session, last_event_id)
        self.assertEqual(response.code, 200)
        reader = Collect([])
        response.deliverBody(reader)
        await self.until(lambda: reader.chunks)
        return reader

    @staticmethod
    def parsed(reader: Collect) -> tuple[list[Event], SSEParser]:
        """The events read so far (the priming one included: empty data), and the parser
        (its ``retry``)."""
        parser = SSEParser()
        return parser.feed(b"".join(reader.chunks)), parser

    async def close(self, reader: Collect) -> None:
        """The client closes the stream; aigw has seen it go once its slot is free."""
        limits = self.service.gateway.stream_limits
        reader.transport.stopProducing()  # type: ignore[union-attr]
        await self.until(lambda: limits.total == 0)

    @run
    async def test_a_get_stream_opens_with_an_id_empty_data_and_the_retry(self) -> None:
        session = await self.start()
        reader = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        events, parser = self.parsed(reader)
        self.assertEqual([(e.data, e.retry) for e in events], [("", 2000)])
        self.assertEqual(self.last_ids(session, events[0].id), {})
        # Before any message: the backend's stream opens after the client's.
        self.alpha.push(LIST_CHANGED, "ev-1")
        await self.until(lambda: sse_messages(b"".join(reader.chunks)) == [LIST_CHANGED])
        events, parser = self.parsed(reader)
        self.assertEqual(events[0].data, "")
        self.assertEqual(self.last_ids(session, events[1].id), {"alpha": "ev-1"})
        self.assertEqual(parser.retry, 2000)
        await self.close(reader)

    @run
    async def test_a_resumed_streams_priming_id_is_where_it_resumes_every_backend(
        self,
    ) -> None:
        """The client's ``Last-Event-ID``, less what names no backend of the session."""
        session = await self.start(stream_retry=0.75)
        asked = self.merged_id(session, {"alpha": "ev-7", "gone": "ev-1"})
        reader = await self.get_stream(session, asked)
        await self.until(lambda: self.alpha.stream_requests)
        (priming,), parser = self.parsed(reader)
        self.assertEqual(priming.data, "")
        self.assertEqual(self.last_ids(session, priming.id), {"alpha": "ev-7"})
        self.assertEqual(parser.retry, 750)
        self.assertEqual(self.alpha.stream_requests[0].getHeader(b"last-event-id"), b"ev-7")
        await self.close(reader)

    @run
    async def test_a_stream_lost_after_its_priming_resumes_from_it_nothing_lost_or_twice(
        self,
    ) -> None:
        """A stream that got one message, then one that got only its priming event; what
        the backend sent while neither was open comes once on the stream resuming from
        that priming id, and nothing the first got comes again."""
        session = await self.start()
        first = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        self.alpha.push(updated(1), "ev-1")
        await self.until(lambda: sse_messages(b"".join(first.chunks)) == [updated(1)])
        last = self.parsed(first)[0][-1].id
        await self.close(first)
        second = await self.get_stream(session, last)
        (primed,), _ = self.parsed(second)
        self.assertEqual(self.last_ids(session, primed.id), self.last_ids(session, last))
        await self.close(second)
        self.alpha.push(updated(2), "ev-2")  # the lingering upstream stream holds it
        third = await self.get_stream(session, primed.id)
        await self.until(lambda: sse_messages(b"".join(third.chunks)) == [updated(2)])
        self.assertEqual(self.last_ids(session, self.parsed(third)[0][-1].id), {"alpha": "ev-2"})
        self.assertEqual(len(self.alpha.stream_requests), 1)
        await self.close(third)

    async def primed(self, reader: Collect, event_id: str, events: int) -> str:
        """The backend primes its stream with ``event_id``; once the client has read
        ``events`` events, the last one's (merged) id."""
        self.alpha.prime(event_id)
        await self.until(lambda: len(self.parsed(reader)[0]) == events)
        return self.parsed(reader)[0][-1].id or ""

    @run
    async def test_a_backends_priming_id_reaches_the_client_before_any_message(self) -> None:
        """The backend's own priming event (an id, empty data) is written on at once as
        an event of empty data and the new merged id; the same id again writes nothing;
        an event of an id and no data line counts as well (WHATWG keeps its id)."""
        session = await self.start()
        reader = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        await self.primed(reader, "p-1", 2)
        self.alpha.prime("p-1")
        self.alpha.prime("p-2", data_line=False)
        self.alpha.push(LIST_CHANGED, "ev-3")
        await self.until(lambda: sse_messages(b"".join(reader.chunks)) == [LIST_CHANGED])
        events, _ = self.parsed(reader)
        ids = [{}, {"alpha": "p-1"}, {"alpha": "p-2"}, {"alpha": "ev-3"}]
        self.assertEqual(
            [(bool(e.data), self.last_ids(session, e.id)) for e in events],
            [(i == 3, last) for i, last in enumerate(ids)],
        )
        await self.close(reader)

    @run
    async def test_a_client_back_before_any_message_resumes_the_backend_from_its_priming(
        self,
    ) -> None:
        """No lingering feed to take (``stream_linger`` 0, as in another process): the
        stream resuming from the primed id asks the backend to replay from its priming
        event, rather than opening its stream afresh (what it sent meanwhile lost)."""
        session = await self.start(stream_linger=0.0)
        first = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        last = await self.primed(first, "p-1", 2)
        await self.close(first)
        second = await self.get_stream(session, last)
        await self.until(lambda: len(self.alpha.stream_requests) == 2)
        self.assertEqual(self.alpha.stream_requests[1].getHeader(b"last-event-id"), b"p-1")
        (mark,), _ = self.parsed(second)
        self.assertEqual(self.last_ids(session, mark.id), {"alpha": "p-1"})
        await self.close(second)

    @run
    async def test_a_message_lost_after_a_priming_comes_again_from_the_lingering_feed(
        self,
    ) -> None:
        """The priming id is among the feed's ``recent``: a stream resuming from it (the
        message after it lost in flight) takes the lingering feed, gets that message
        again and nothing else twice, and no new upstream stream is opened."""
        session = await self.start()
        first = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        self.alpha.push(updated(1), "ev-1")
        await self.until(lambda: sse_messages(b"".join(first.chunks)) == [updated(1)])
        primed = await self.primed(first, "p-2", 3)
        self.alpha.push(updated(3), "ev-3")
        await self.until(lambda: len(sse_messages(b"".join(first.chunks))) == 2)
        await self.close(first)
        second = await self.get_stream(session, primed)
        await self.until(lambda: sse_messages(b"".join(second.chunks)) == [updated(3)])
        self.assertEqual(self.last_ids(session, self.parsed(second)[0][-1].id), {"alpha": "ev-3"})
        self.assertEqual(len(self.alpha.stream_requests), 1)
        await self.close(second)

    @run
    async def test_a_lingering_feed_keeps_a_priming_id_for_the_stream_that_takes_it(
        self,
    ) -> None:
        """Primed while no client stream is open: the stream that takes the lingering
        feed gets the id (after its own priming event, before any message)."""
        session = await self.start()
        first = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        await self.close(first)
        self.alpha.prime("p-1")
        self.alpha.push(updated(2), "ev-2")
        self.alpha.prime("p-3")
        second = await self.get_stream(session, self.parsed(first)[0][-1].id)
        await self.until(lambda: len(self.parsed(second)[0]) == 4)
        events, _ = self.parsed(second)
        ids = [{}, {"alpha": "p-1"}, {"alpha": "ev-2"}, {"alpha": "p-3"}]
        self.assertEqual(
            [(bool(e.data), self.last_ids(session, e.id)) for e in events],
            [(i == 2, last) for i, last in enumerate(ids)],
        )
        self.assertEqual(len(self.alpha.stream_requests), 1)
        await self.close(second)

    @run
    async def test_a_stream_aigw_ends_says_when_to_come_back_and_from_where(self) -> None:
        """A stop ends every client stream (``Gateway.close_streams``): the last event
        repeats the stream's id and gives the ``retry`` of the config then current."""
        session = await self.start()
        reader = await self.get_stream(session)
        await self.until(lambda: self.alpha.stream_requests)
        self.alpha.push(LIST_CHANGED, "ev-3")
        await self.until(lambda: sse_messages(b"".join(reader.chunks)) == [LIST_CHANGED])
        config = self.service.config_holder.current
        sessions = attrs.evolve(config.sessions, stream_retry=4.5)
        self.service.config_holder.swap(attrs.evolve(config, sessions=sessions))
        chunks = len(reader.chunks)
        self.service.gateway.close_streams()
        await self.until(lambda: self.service.gateway.stream_limits.total == 0)
        parser = SSEParser()
        before = parser.feed(b"".join(reader.chunks[:chunks]))
        (last,) = parser.feed(b"".join(reader.chunks[chunks:]))
        self.assertEqual(last.data, "")
        self.assertEqual(self.last_ids(session, last.id), self.last_ids(session, before[-1].id))
        self.assertEqual(self.last_ids(session, last.id), {"alpha": "ev-3"})
        self.assertEqual((before[0].retry, last.retry), (2000, 4500))

    @run
    async def test_a_listen_is_not_primed_nor_given_a_retry(self) -> None:
        """2026-07-28 streamable-http: "Resumable SSE streams via Last-Event-ID are not
        supported"; a listen is sent again, not resumed."""
        await self.start()
        response = await post_listen(self.http, self.url, {"toolsListChanged": True}, "L1")
        reader = Collect([])
        response.deliverBody(reader)
        await self.until(lambda: b"acknowledged" in b"".join(reader.chunks))
        events, parser = self.parsed(reader)
        self.assertEqual([(e.id, bool(e.data)) for e in events], [(None, True)])
        self.assertIsNone(parser.retry)
        await self.close(reader)
