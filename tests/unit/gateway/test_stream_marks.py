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
from aigw.gateway.streams import decode_event_ids, encode_event_ids
from aigw.protocol.sse import Event, SSEParser
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import Collect, GatewayTestCase, post_listen, sse_messages
from tests.unit.memory import run

LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


def updated(n: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": n}}


class StreamMarkTests(GatewayTestCase):
    async def start(self, **sessions: object) -> str:
        """aigw in front of ``alpha`` (which has a GET stream); a session's id."""
        self.alpha = FakeUpstream(tools=["echo"])
        self.alpha.get_status = 200
        backend = BackendConfig(name="alpha", url=self.start_upstream(self.alpha), timeout=5.0)
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
        self.assertEqual(events, [Event("", id=encode_event_ids({}), retry=2000)])
        self.assertEqual(decode_event_ids(events[0].id, {"alpha"}), {})
        # Before any message: the backend's stream opens after the client's.
        self.alpha.push(LIST_CHANGED, "ev-1")
        await self.until(lambda: sse_messages(b"".join(reader.chunks)) == [LIST_CHANGED])
        events, parser = self.parsed(reader)
        self.assertEqual(events[0].data, "")
        self.assertEqual((events[1].id, parser.retry), (encode_event_ids({"alpha": "ev-1"}), 2000))
        await self.close(reader)

    @run
    async def test_a_resumed_streams_priming_id_is_where_it_resumes_every_backend(
        self,
    ) -> None:
        """The client's ``Last-Event-ID``, less what names no backend of the session."""
        session = await self.start(stream_retry=0.75)
        asked = encode_event_ids({"alpha": "ev-7", "gone": "ev-1"})
        reader = await self.get_stream(session, asked)
        await self.until(lambda: self.alpha.stream_requests)
        (priming,), parser = self.parsed(reader)
        self.assertEqual((priming.data, priming.id), ("", encode_event_ids({"alpha": "ev-7"})))
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
        self.assertEqual(primed.id, last)
        await self.close(second)
        self.alpha.push(updated(2), "ev-2")  # the lingering upstream stream holds it
        third = await self.get_stream(session, primed.id)
        await self.until(lambda: sse_messages(b"".join(third.chunks)) == [updated(2)])
        self.assertEqual(self.parsed(third)[0][-1].id, encode_event_ids({"alpha": "ev-2"}))
        self.assertEqual(len(self.alpha.stream_requests), 1)
        await self.close(third)

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
        self.assertEqual((last.data, last.id), ("", before[-1].id))
        self.assertEqual(last.id, encode_event_ids({"alpha": "ev-3"}))
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
