"""Server-Sent Events: an incremental parser and a writer.

The parser follows the WHATWG HTML Living Standard, §9.2.6 "Interpreting an
event stream" (event stream interpretation):

* lines end with CRLF, LF or CR, and a CRLF may be split across two chunks;
* a leading U+FEFF BOM is dropped once, at the start of the stream, even when
  it arrives split over several chunks;
* a line starting with ``:`` is a comment; a line without ``:`` is a field name
  with an empty value; one space after the colon is dropped;
* ``data`` lines are joined with LF; ``event`` sets the type (default
  "message"); ``id`` sets the last event ID unless the value contains NUL;
  ``retry`` sets the reconnection time when it is ASCII digits only;
* an empty line dispatches the event; an event without any ``data`` line is
  not dispatched (its ``id`` still updates the last event ID); an unfinished
  event at the end of the stream is never dispatched.

Lines are split on bytes (CR and LF never occur inside a UTF-8 sequence), so
each value is decoded on its own, with U+FFFD for invalid bytes as the
standard's UTF-8 decode does.

What a hostile upstream can make the parser hold is bounded: a line (finished
or not) and an event's data are each at most ``max_event_bytes`` (default 4 MiB),
past which ``feed`` raises ``SSEError`` and the stream should be dropped.

MCP 2025-11-25 basic/transports carries JSON-RPC messages as SSE ``data``;
its "Resumability and Redelivery" section uses ``id`` and ``Last-Event-ID``;
a server primes a stream with an event of an id and empty data, and sends ``retry``
before it closes a stream the client is to reconnect to (SEP-1699).
"""

from __future__ import annotations

import attrs

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_CR = b"\r"
_LF = b"\n"
#: The longest ``retry`` value read; more digits than this is not a delay anyway
#: (and int() of thousands of digits is refused by Python).
_MAX_RETRY_DIGITS = 18


class SSEError(Exception):
    """The stream broke a bound (a line or an event too large): drop it."""


@attrs.frozen
class Event:
    """One dispatched event.

    ``id`` is the stream's last event ID when the event was dispatched (WHATWG:
    it persists across events until an ``id`` field changes it; None if the
    stream never sent one), which is what ``Last-Event-ID`` must carry to resume.
    ``retry`` is the stream's reconnection time in milliseconds as last set by a
    ``retry`` field (None if never).
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed bytes as they arrive; get complete events back, in order."""

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_head",
        "_id_buffer",
        "_max",
        "_pending",
        "_pending_size",
        "_skip_lf",
        "last_event_id",
        "retry",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ValueError("max_event_bytes must be positive")
        self._max = max_event_bytes
        # Bytes seen before the BOM question is settled (None once it is).
        self._head: bytes | None = b""
        # Fragments of the line not yet ended, and their total size.
        self._pending: list[bytes] = []
        self._pending_size = 0
        # The previous chunk ended with CR: an LF starting the next one ends no line.
        self._skip_lf = False
        self._data: list[bytes] = []
        self._data_size = 0
        self._event = b""
        self._id_buffer: str | None = None
        #: The last event ID string, updated at each dispatch (WHATWG step 1).
        self.last_event_id: str | None = None
        #: The reconnection time in milliseconds, from the last valid ``retry``.
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[Event]:
        """Parse one chunk; return the events it completes (raises SSEError past a bound)."""
        if self._head is not None:
            head = self._head + data
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head
                return []
            self._head = None
            data = head[len(_BOM) :] if head.startswith(_BOM) else head
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
        if _LF not in data and _CR not in data:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size > self._max:
                raise SSEError(f"an SSE line is longer than {self._max} bytes")
            return []
        if self._pending:
            self._pending.append(data)
            data = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
        if _CR in data:
            self._skip_lf = data.endswith(_CR)
            data = data.replace(b"\r\n", _LF).replace(_CR, _LF)
        lines = data.split(_LF)
        # A line that came whole is held to the bound too: whether a line is refused
        # must not depend on where the stream was cut.
        if len(data) > self._max and max(map(len, lines)) > self._max:
            raise SSEError(f"an SSE line is longer than {self._max} bytes")
        rest = lines.pop()
        if rest:
            if len(rest) > self._max:
                raise SSEError(f"an SSE line is longer than {self._max} bytes")
            self._pending.append(rest)
            self._pending_size = len(rest)
        events: list[Event] = []
        for line in lines:
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            elif line[0] != 0x3A:  # a line starting with ":" is a comment
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                raise SSEError(f"an SSE event is larger than {self._max} bytes")
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id" and b"\0" not in value:
            self._id_buffer = value.decode("utf-8", "replace")
        # bytes.isdigit() means ASCII digits only, as the standard asks.
        elif name == b"retry" and value.isdigit() and len(value) <= _MAX_RETRY_DIGITS:
            self.retry = int(value)
        # Any other field (or an id with NUL, a retry not all digits) is ignored.

    def _dispatch(self) -> Event | None:
        self.last_event_id = self._id_buffer
        data = self._data
        event = self._event
        self._event = b""
        if not data:
            return None
        self._data = []
        self._data_size = 0
        text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
        kind = event.decode("utf-8", "replace") if event else "message"
        return Event(text, kind, self.last_event_id, self.retry)


# -- Writing -------------------------------------------------------------------------


def _field_value(name: str, value: str) -> bytes:
    if "\n" in value or "\r" in value:
        raise ValueError(f"an SSE {name} cannot contain a line break")
    return value.encode("utf-8")


def format_event(
    data: bytes | str,
    event_id: str | None = None,
    event: str | None = None,
    retry: int | None = None,
) -> bytes:
    """One event; data holding line breaks (CRLF, LF or CR) becomes several ``data:`` lines.

    An empty ``data`` still makes an event (one empty ``data:`` line): MCP 2025-11-25
    basic/transports uses one, with an id, to prime a client for resumption (the
    parser above dispatches it with empty data, as WHATWG's does; the MCP SDK clients
    keep its id and skip it, as it carries no message).  ``retry`` is the
    reconnection time in milliseconds the client is to wait before reconnecting
    (WHATWG §9.2.6: ASCII digits only; basic/transports: the client MUST respect it).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    parts: list[bytes] = []
    if event is not None:
        parts.append(b"event: " + _field_value("event type", event) + b"\n")
    if event_id is not None:
        if "\0" in event_id:
            raise ValueError("an SSE id cannot contain NUL")
        parts.append(b"id: " + _field_value("id", event_id) + b"\n")
    if retry is not None:
        if retry < 0:
            raise ValueError("an SSE retry is a number of milliseconds, at least 0")
        parts.append(b"retry: %d\n" % retry)
    if b"\n" in raw or b"\r" in raw:
        lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        parts.append(b"".join(b"data: " + line + b"\n" for line in lines))
    else:
        parts.append(b"data: " + raw + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def format_comment(text: str = "") -> bytes:
    """A comment (e.g. a keep-alive): clients ignore it; it keeps proxies from timing out."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "".join(f": {line}\n" if line else ":\n" for line in lines).encode("utf-8") + b"\n"
