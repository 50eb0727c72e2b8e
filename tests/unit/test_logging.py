"""Log observers: journald priorities, JSON lines, level filtering."""

from __future__ import annotations

import io
import json

from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import LoggingConfig
from aigw.logging import MAX_FIELD_CHARS, JournalObserver, JSONObserver, build_observer, one_line


def emit(observer: object, level: LogLevel, text: str, **fields: object) -> None:
    log = Logger(namespace="aigw.test", observer=observer)  # type: ignore[arg-type]
    log.emit(level, text, **fields)


class JournalPrefixTests(SynchronousTestCase):
    """sd-daemon(3): a line starting <N> is recorded at syslog priority N."""

    def test_each_level_gets_its_syslog_priority(self) -> None:
        stream = io.StringIO()
        observer = JournalObserver(stream)
        for level in (
            LogLevel.critical,
            LogLevel.error,
            LogLevel.warn,
            LogLevel.info,
            LogLevel.debug,
        ):
            emit(observer, level, "event {n}", n=level.name)
        lines = stream.getvalue().splitlines()
        self.assertEqual([line[:3] for line in lines], ["<2>", "<3>", "<4>", "<6>", "<7>"])
        self.assertEqual(lines[1], "<3>aigw.test: event error")

    def test_journal_lines_carry_no_timestamp(self) -> None:
        stream = io.StringIO()
        emit(JournalObserver(stream), LogLevel.info, "hello")
        self.assertEqual(stream.getvalue(), "<6>aigw.test: hello\n")

    def test_multiline_messages_keep_their_priority_on_every_line(self) -> None:
        stream = io.StringIO()
        emit(JournalObserver(stream), LogLevel.error, "one\ntwo")
        self.assertEqual(stream.getvalue(), "<3>aigw.test: one\n<3>aigw.test: two\n")

    def test_journal_format_chosen_when_journal_stream_is_set(self) -> None:
        stream = io.StringIO()
        observer = build_observer(LoggingConfig(), stream, environ={"JOURNAL_STREAM": "8:1234"})
        emit(observer, LogLevel.warn, "careful")
        self.assertEqual(stream.getvalue(), "<4>aigw.test: careful\n")

    def test_text_format_without_systemd_has_a_timestamp(self) -> None:
        stream = io.StringIO()
        observer = build_observer(LoggingConfig(), stream, environ={})
        emit(observer, LogLevel.info, "plain")
        line = stream.getvalue()
        self.assertFalse(line.startswith("<"))
        self.assertIn("plain", line)
        self.assertRegex(line, r"^\d{4}-\d\d-\d\d")


class JSONTests(SynchronousTestCase):
    def test_one_object_per_line_with_fields(self) -> None:
        stream = io.StringIO()
        emit(JSONObserver(stream), LogLevel.info, "GET {path}", path="/healthz", status=200)
        record = json.loads(stream.getvalue())
        self.assertEqual(record["level"], "info")
        self.assertEqual(record["message"], "GET /healthz")
        self.assertEqual(record["path"], "/healthz")
        self.assertEqual(record["status"], 200)
        self.assertEqual(record["namespace"], "aigw.test")

    def test_json_wins_over_journal(self) -> None:
        stream = io.StringIO()
        observer = build_observer(
            LoggingConfig(format="json"), stream, environ={"JOURNAL_STREAM": "1:2"}
        )
        emit(observer, LogLevel.info, "x")
        self.assertEqual(json.loads(stream.getvalue())["message"], "x")


class LevelTests(SynchronousTestCase):
    def test_events_below_the_configured_level_are_dropped(self) -> None:
        stream = io.StringIO()
        observer = build_observer(
            LoggingConfig(level="warn"), stream, environ={"JOURNAL_STREAM": "1:2"}
        )
        emit(observer, LogLevel.info, "quiet")
        emit(observer, LogLevel.error, "loud")
        self.assertEqual(stream.getvalue(), "<3>aigw.test: loud\n")


class OneLineTests(SynchronousTestCase):
    """A client's string in a field is one line of text, escaped (CWE-117)."""

    FORGED = "x\n<6>aigw.access: tools/call ok sub=admin\r\u2028\u2029\x00\ud800 caf\u00e9"

    def test_a_field_cannot_start_a_journal_entry(self) -> None:
        """Before, the journal format split the field at each line break into entries
        of their own, with aigw's priority and namespace: a forged access line."""
        stream = io.StringIO()
        emit(JournalObserver(stream), LogLevel.info, "tools/call name={name}", name=self.FORGED)
        written = stream.getvalue()
        self.assertEqual(written.count("\n"), 1, written)
        self.assertEqual(
            written,
            "<6>aigw.test: tools/call name=x\\n<6>aigw.access: tools/call ok sub=admin"
            "\\r\\u2028\\u2029\\x00\\ud800 caf\u00e9\n",
        )
        written.encode("utf-8")  # what stderr writes

    def test_a_field_cannot_start_a_text_line(self) -> None:
        """Before, Twisted's text format indented LF's continuation but wrote CR, U+2028,
        U+2029, NUL and lone surrogates as they came."""
        stream = io.StringIO()
        observer = build_observer(LoggingConfig(), stream, environ={})
        emit(observer, LogLevel.info, "tools/call name={name}", name=self.FORGED)
        written = stream.getvalue()
        self.assertEqual(written.splitlines(), [written[:-1]])
        self.assertTrue(written.endswith("sub=admin\\r\\u2028\\u2029\\x00\\ud800 caf\u00e9\n"))

    def test_a_long_field_is_cut(self) -> None:
        stream = io.StringIO()
        emit(JournalObserver(stream), LogLevel.info, "{name}", name="\ud800" * 5000)
        expected = "\\ud800" * MAX_FIELD_CHARS + "...(3976 more characters)"
        self.assertEqual(stream.getvalue(), f"<6>aigw.test: {expected}\n")

    def test_json_keeps_the_value_whole(self) -> None:
        """RFC 8259 section 7 escapes control characters; the field reads back whole."""
        stream = io.StringIO()
        emit(JSONObserver(stream), LogLevel.info, "{name}", name="a\nb\u2028")
        self.assertEqual(stream.getvalue().count("\n"), 1)
        self.assertEqual(json.loads(stream.getvalue())["name"], "a\nb\u2028")

    def test_one_line(self) -> None:
        self.assertEqual(one_line("plain caf\u00e9"), "plain caf\u00e9")
        self.assertEqual(one_line("a\\b\n"), "a\\\\b\\n")
        self.assertEqual(one_line('it\'s "q"\t'), 'it\'s "q"\\t')
