"""Log observers: systemd journal, JSON lines, and plain text.

Everything aigw says goes through ``twisted.logger``; this module only decides
how events are written.  Under systemd (``JOURNAL_STREAM`` set) each line
starts with the syslog priority (``<3>`` ... ``<7>``, see sd-daemon(3)) and
carries no timestamp, so journald records levels and times itself.
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
        lines = _message(event).splitlines() or [""]
        out = "".join(f"<{priority}>{namespace}: {line}\n" for line in lines)
        self._stream.write(out)
        self._stream.flush()


@implementer(ILogObserver)
class JSONObserver:
    """One JSON object per line: time, level, namespace, message and the event's fields."""

    _SKIP = frozenset(
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
            if key not in self._SKIP and not key.startswith("_"):
                record[key] = value
        self._stream.write(json.dumps(record, default=repr, ensure_ascii=False) + "\n")
        self._stream.flush()


@implementer(ILogObserver)
class TextObserver:
    """Classic Twisted text lines with a timestamp, for terminals and files."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: LogEvent) -> None:
        text = formatEventAsClassicLogText(event)
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
