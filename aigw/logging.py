"""Log observers: systemd journal, JSON lines, and plain text.

Everything aigw says goes through ``twisted.logger``; this module only decides
how events are written.  Under systemd (``JOURNAL_STREAM`` set) each line
starts with the syslog priority (``<3>`` ... ``<7>``, see sd-daemon(3)) and
carries no timestamp, so journald records levels and times itself.

A value a log line shows may be a client's or a backend's string (a method, a tool
name, a URI): in the text and journal formats each string field is written on one
line, its characters that are not printable (CR, LF, NUL, U+2028, U+2029, lone
surrogates, ...) escaped as Python writes them, and cut at ``MAX_FIELD_CHARS``
(``one_line``).  Without that, a tool name holding a line break wrote a line of the
client's choosing: the journal format split it into an entry of its own with
aigw's priority and namespace, a forged access line (CWE-117).  The JSON format
needs no escape (RFC 8259 section 7 escapes control characters in strings).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from aigw.config import LoggingConfig

#: sd-daemon(3) priorities: the journal reads them from the line prefix.
SYSLOG_PRIORITY = {
    LogLevel.critical: 2,
    LogLevel.error: 3,
    LogLevel.warn: 4,
    LogLevel.info: 6,
    LogLevel.debug: 7,
}

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


#: Twisted's own keys of an event: no field of aigw's.
_TWISTED_KEYS = frozenset(
    {
        "log_logger",
        "log_source",
        "log_format",
        "log_time",
        "log_level",
        "log_namespace",
        "log_failure",
        "log_io",
        "log_text",
        "log_flattened",
        "log_trace",
        "log_system",
        "format",
        "message",
        "isError",
        "time",
        "system",
        "failure",
        "why",
    }
)
#: The longest string field a text or journal line shows whole (``one_line``).
MAX_FIELD_CHARS = 1024


def one_line(text: str) -> str:
    """``text`` fit for one line of a text log: unchanged when it is printable and
    short; else its characters that are not printable (``str.isprintable``: line
    breaks, other controls, separators but the space, surrogates, unassigned code
    points) and backslashes escaped as in ``repr``, and what passes ``MAX_FIELD_CHARS`` replaced by
    how many characters were left out."""
    if len(text) > MAX_FIELD_CHARS:
        left_out = len(text) - MAX_FIELD_CHARS
        return one_line(text[:MAX_FIELD_CHARS]) + f"...({left_out} more characters)"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in text)


def _lines_safe(event: LogEvent) -> LogEvent:
    """``event``, its string fields passed through ``one_line`` (a copy, when any
    changes): what a text or journal line formats."""
    changed: dict[str, Any] | None = None
    for key, value in event.items():
        if (
            type(value) is str
            and key not in _TWISTED_KEYS
            and not key.startswith("log_")
            and (len(value) > MAX_FIELD_CHARS or not value.isprintable())
        ):
            if changed is None:
                changed = dict(event)
            changed[key] = one_line(value)
    return event if changed is None else changed


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr is connected to the journal (systemd.exec(5))."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM"))


def _failure_text(event: LogEvent) -> str:
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        return "\n" + failure.getTraceback()
    return ""


def _message(event: LogEvent) -> str:
    return (formatEvent(event) or "") + _failure_text(event)


@implementer(ILogObserver)
class JournalObserver:
    """One line per event, prefixed ``<N>`` with the syslog priority; no timestamp."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level", LogLevel.info)
        priority = SYSLOG_PRIORITY.get(level, 6)
        namespace = event.get("log_namespace", "-")
        # Continuation lines of a traceback keep the priority of the event.
        lines = _message(_lines_safe(event)).splitlines() or [""]
        out = "".join(f"<{priority}>{namespace}: {line}\n" for line in lines)
        self._stream.write(out)
        self._stream.flush()


@implementer(ILogObserver)
class JSONObserver:
    """One JSON object per line: time, level, namespace, message and the event's fields."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level", LogLevel.info)
        record: dict[str, Any] = {
            "time": round(event.get("log_time", time.time()), 6),
            "level": level.name,
            "namespace": event.get("log_namespace", "-"),
            "message": _message(event),
        }
        for key, value in event.items():
            if key not in _TWISTED_KEYS and not key.startswith("_"):
                record[key] = value
        self._stream.write(json.dumps(record, default=repr, ensure_ascii=False) + "\n")
        self._stream.flush()


@implementer(ILogObserver)
class TextObserver:
    """Classic Twisted text lines with a timestamp, for terminals and files."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: LogEvent) -> None:
        text = formatEventAsClassicLogText(_lines_safe(event))
        if text:
            self._stream.write(text)
            self._stream.flush()


def build_observer(
    config: LoggingConfig, stream: IO[str], environ: Mapping[str, str] | None = None
) -> ILogObserver:
    """The observer the config asks for, filtered at its level.

    ``format: json`` wins; otherwise the journal format is chosen whenever
    systemd connected us to the journal, and text elsewhere.
    """
    observer: ILogObserver
    if config.format == "json":
        observer = JSONObserver(stream)
    elif under_systemd(environ):
        observer = JournalObserver(stream)
    else:
        observer = TextObserver(stream)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[config.level])
    return FilteringLogObserver(observer, [predicate])
