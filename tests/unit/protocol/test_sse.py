"""The SSE parser and writer (WHATWG HTML §9.2.6 "Interpreting an event stream").

MCP 2025-11-25 basic/transports carries JSON-RPC messages as SSE ``data`` and
uses ``id``/``retry`` for resumability ("Resumability and Redelivery").
"""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aigw.protocol.sse import Event, SSEError, SSEParser, format_comment, format_event


def parse(*chunks: bytes) -> list[Event]:
    parser = SSEParser()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


class ParserTests(SynchronousTestCase):
    def test_lf_crlf_and_cr_all_end_lines(self) -> None:
        """WHATWG: end-of-line = ( cr lf / cr / lf )."""
        for eol in (b"\n", b"\r\n", b"\r"):
            self.assertEqual(parse(b"data: x" + eol + eol), [Event("x")], eol)

    def test_crlf_split_across_chunks_is_one_line_end(self) -> None:
        self.assertEqual(parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"), [Event("a\nb")])

    def test_cr_at_chunk_end_followed_by_cr_is_two_line_ends(self) -> None:
        self.assertEqual(parse(b"data: a\r", b"\r"), [Event("a")])

    def test_data_lines_are_joined_with_lf(self) -> None:
        """WHATWG: data field appends the value and a U+000A; the last LF is removed."""
        self.assertEqual(parse(b"data: a\ndata: b\ndata\n\n"), [Event("a\nb\n")])

    def test_only_one_space_after_the_colon_is_dropped(self) -> None:
        self.assertEqual(parse(b"data:  two\n\ndata:none\n\n"), [Event(" two"), Event("none")])

    def test_empty_data_field_still_dispatches(self) -> None:
        """A ``data:`` line makes the data buffer non-empty (MCP priming events use this)."""
        self.assertEqual(parse(b"id: 7\ndata:\n\n"), [Event("", id="7")])

    def test_event_without_data_is_not_dispatched_but_its_id_counts(self) -> None:
        """WHATWG dispatch: the last event ID is set before the empty-data check."""
        parser = SSEParser()
        self.assertEqual(parser.feed(b"id: 3\n\n"), [])
        self.assertEqual(parser.last_event_id, "3")
        self.assertEqual(parser.feed(b"data: x\n\n"), [Event("x", id="3")])

    def test_event_field_sets_the_type_for_one_event(self) -> None:
        events = parse(b"event: ping\ndata: 1\n\ndata: 2\n\n")
        self.assertEqual(events, [Event("1", "ping"), Event("2", "message")])

    def test_id_with_nul_is_ignored(self) -> None:
        self.assertEqual(parse(b"id: 1\n\nid: a\x00b\ndata: x\n\n"), [Event("x", id="1")])

    def test_empty_id_resets_the_last_event_id(self) -> None:
        self.assertEqual(parse(b"id: 1\ndata: a\n\nid\ndata: b\n\n")[1], Event("b", id=""))

    def test_retry_must_be_ascii_digits(self) -> None:
        parser = SSEParser()
        parser.feed(b"retry: 1500\n\n")
        self.assertEqual(parser.retry, 1500)
        parser.feed(b"retry: 15s\nretry: \xd9\xa3\nretry:\n\n")  # not digits, Arabic-Indic 3, empty
        self.assertEqual(parser.retry, 1500)
        self.assertEqual(parser.feed(b"data: x\n\n"), [Event("x", retry=1500)])

    def test_comments_are_ignored(self) -> None:
        self.assertEqual(parse(b": keep-alive\n\n:\ndata: x\n: mid\n\n"), [Event("x")])

    def test_unknown_fields_are_ignored(self) -> None:
        self.assertEqual(parse(b"foo: bar\ndata: x\nDATA: y\n\n"), [Event("x")])

    def test_line_without_colon_is_a_field_with_empty_value(self) -> None:
        self.assertEqual(parse(b"data\ndata\n\n"), [Event("\n")])

    def test_leading_bom_is_dropped_once(self) -> None:
        """WHATWG: one leading U+FEFF is ignored; a second one is part of the line."""
        self.assertEqual(parse(b"\xef\xbb\xbfdata: x\n\n"), [Event("x")])
        self.assertEqual(parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n"), [])

    def test_bom_split_across_chunks_is_dropped(self) -> None:
        self.assertEqual(parse(b"\xef", b"\xbb", b"\xbfdata: x\n\n"), [Event("x")])

    def test_invalid_utf8_becomes_replacement_characters(self) -> None:
        self.assertEqual(parse(b"data: a\xffb\n\n"), [Event("a\ufffdb")])

    def test_multibyte_characters_split_across_chunks(self) -> None:
        self.assertEqual(parse(b"data: \xc3", b"\xa9\n\n"), [Event("é")])

    def test_unfinished_event_is_not_dispatched(self) -> None:
        """WHATWG: an incomplete event at the end of the stream is discarded."""
        self.assertEqual(parse(b"data: x\n"), [])

    def test_an_endless_line_is_refused(self) -> None:
        parser = SSEParser(max_event_bytes=1024)
        parser.feed(b"data: " + b"x" * 1000)
        self.assertRaises(SSEError, parser.feed, b"x" * 100)

    def test_a_long_line_is_refused_however_the_stream_is_cut(self) -> None:
        """The line bound holds for a line arriving whole in one chunk too (found by
        ``make fuzz``: an over-long ``event:`` line or comment passed in one chunk and was
        refused when split)."""
        line = b"event: " + b"x" * 100 + b"\n"
        self.assertRaises(SSEError, SSEParser(max_event_bytes=64).feed, line)
        split = SSEParser(max_event_bytes=64)
        self.assertRaises(SSEError, lambda: [split.feed(line[:50]), split.feed(line[50:])])

    def test_an_endless_event_is_refused(self) -> None:
        parser = SSEParser(max_event_bytes=1024)
        self.assertRaises(SSEError, parser.feed, b"data: xxxxxxxxxx\n" * 100)

    def test_many_small_events_within_the_bound_are_fine(self) -> None:
        parser = SSEParser(max_event_bytes=64)
        events = parser.feed(b"data: xxxxxxxxxx\n\n" * 1000)
        self.assertEqual(len(events), 1000)


class WriterTests(SynchronousTestCase):
    def test_format_event_single_line(self) -> None:
        self.assertEqual(format_event('{"a":1}'), b'data: {"a":1}\n\n')

    def test_format_event_with_id_and_type(self) -> None:
        self.assertEqual(
            format_event(b"x", event_id="5", event="e"), b"event: e\nid: 5\ndata: x\n\n"
        )

    def test_format_event_splits_every_kind_of_line_break(self) -> None:
        self.assertEqual(format_event("a\r\nb\rc\nd"), b"data: a\ndata: b\ndata: c\ndata: d\n\n")

    def test_format_event_refuses_line_breaks_in_fields(self) -> None:
        self.assertRaises(ValueError, format_event, "x", event_id="1\n2")
        self.assertRaises(ValueError, format_event, "x", event="a\rb")
        self.assertRaises(ValueError, format_event, "x", event_id="1\x002")

    def test_a_priming_event_is_an_id_a_retry_and_empty_data(self) -> None:
        """MCP 2025-11-25 basic/transports: an id and an empty ``data``; the parser
        records the id and the reconnection time (WHATWG: ASCII digits, milliseconds)."""
        primed = format_event(b"", event_id="e30", retry=2000)
        self.assertEqual(primed, b"id: e30\nretry: 2000\ndata: \n\n")
        parser = SSEParser()
        self.assertEqual(parser.feed(primed), [Event("", id="e30", retry=2000)])
        self.assertEqual((parser.last_event_id, parser.retry), ("e30", 2000))

    def test_format_event_refuses_a_negative_retry(self) -> None:
        self.assertRaises(ValueError, format_event, "", event_id="1", retry=-1)

    def test_format_comment_is_ignored_by_parsers(self) -> None:
        self.assertEqual(format_comment("keep-alive"), b": keep-alive\n\n")
        self.assertEqual(parse(format_comment("a\nb") + format_event("x")), [Event("x")])


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
field_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=10
)


class PropertyTests(SynchronousTestCase):
    @given(
        st.lists(st.tuples(texts, st.none() | field_values, st.none() | field_values), max_size=6),
        st.lists(st.integers(min_value=0, max_value=400), max_size=10),
        st.sampled_from([b"\n", b"\r\n", b"\r"]),
    )
    def test_any_chunking_gives_the_same_events(
        self,
        written: list[tuple[str, str | None, str | None]],
        cuts: list[int],
        eol: bytes,
    ) -> None:
        stream = b"".join(
            format_event(data, event_id, event).replace(b"\n", eol)
            for data, event_id, event in written
        )
        whole = parse(stream)
        points = sorted({min(c, len(stream)) for c in cuts})
        pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
        self.assertEqual(parse(*pieces), whole)
        self.assertEqual(parse(*(stream[i : i + 1] for i in range(len(stream)))), whole)

    @given(
        st.lists(st.tuples(texts, st.none() | field_values, st.none() | field_values), max_size=6)
    )
    def test_what_is_written_is_read_back(
        self, written: list[tuple[str, str | None, str | None]]
    ) -> None:
        events = parse(b"".join(format_event(d, i, e) for d, i, e in written))
        normalized = [d.replace("\r\n", "\n").replace("\r", "\n") for d, _, _ in written]
        self.assertEqual([e.data for e in events], normalized)
        self.assertEqual([e.event for e in events], [e or "message" for _, _, e in written])

    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_never_raise_anything_but_sse_error(self, stream: bytes) -> None:
        parser = SSEParser(max_event_bytes=64)
        events = []
        with contextlib.suppress(SSEError):
            events = parser.feed(stream)
        self.assertTrue(all(len(event.data.encode()) <= 64 for event in events))
