"""W3C Trace Context (``traceparent``, ``tracestate``): read from a client, written upstream.

W3C Trace Context §3.2 fixes the headers' format; a participant that records
nothing still passes them on unchanged, so a trace crosses aigw whether or not
aigw itself traces.  MCP carries the same values as the unprefixed ``_meta``
keys ``traceparent`` and ``tracestate`` of a request (SEP-414, MCP 2026-07-28):
the one channel a stdio server has.  A malformed ``traceparent`` is ignored (§3.2.2: the
receiver starts a new trace), and so then is ``tracestate`` (§3.3: it is
meaningless without its ``traceparent``); a malformed ``tracestate`` alone is
dropped.  Pure: no Twisted, nothing of aigw.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"
#: SEP-414: the ``_meta`` keys, unprefixed by exception to the ``_meta`` naming rule.
META_TRACEPARENT = "traceparent"
META_TRACESTATE = "tracestate"

#: §3.2.2: version 00 is exactly ``00-<trace-id>-<parent-id>-<trace-flags>`` in
#: lower-case hex; versions aigw does not know are ignored like malformed ones.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
#: §3.3.1: at most 32 list members; aigw keeps at most 512 characters (§3.3.1.5
#: lets a vendor truncate; dropping the whole header is the simple safe choice).
MAX_TRACESTATE = 512
_MAX_MEMBERS = 32
#: §3.3.1.3: ``key=value``; a key is a simple key or ``tenant@system``; a value is
#: printable ASCII but ``,`` and ``=``, not ending in a space.
_MEMBER = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)


@attrs.frozen
class TraceContext:
    """One position in a trace: the span the next hop's work is a child of."""

    trace_id: str
    #: The ``parent-id`` the next hop receives: the id of the span it continues.
    span_id: str
    flags: str
    #: The validated ``tracestate``, or None.
    state: str | None = None

    @property
    def sampled(self) -> bool:
        """§3.2.2.5: bit 0 of ``trace-flags``, the caller's sampling decision."""
        return bool(int(self.flags, 16) & 1)

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def add_headers(self, headers: dict[bytes, bytes]) -> None:
        """Write ``traceparent`` (and ``tracestate``) into an upstream request's headers."""
        headers[TRACEPARENT] = self.traceparent().encode("ascii")
        if self.state is not None:
            headers[TRACESTATE] = self.state.encode("ascii")

    def in_meta(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with this context in its ``_meta`` (SEP-414), replacing the caller's."""
        meta = params.get("_meta")
        meta = (
            {k: v for k, v in meta.items() if k != META_TRACESTATE}
            if isinstance(meta, dict)
            else {}
        )
        meta[META_TRACEPARENT] = self.traceparent()
        if self.state is not None:
            meta[META_TRACESTATE] = self.state
        return {**params, "_meta": meta}


def parse_traceparent(value: str) -> tuple[str, str, str] | None:
    """``(trace_id, parent_id, flags)`` of a version-00 ``traceparent``; None if invalid
    (§3.2.2.3-4: all-zero ids are invalid)."""
    found = _TRACEPARENT.fullmatch(value)
    if found is None:
        return None
    trace_id, parent_id, flags = found.groups()
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, flags


def parse_tracestate(values: Sequence[str]) -> str | None:
    """The ``tracestate`` fields joined (§3.3.1.1: several fields are one list), or None
    when empty, too long, or any list member is malformed."""
    joined = ",".join(values)
    if not joined or len(joined) > MAX_TRACESTATE:
        return None
    members = [m.strip(" \t") for m in joined.split(",")]
    members = [m for m in members if m]  # §3.3.1.1: empty list members are allowed
    if not members or len(members) > _MAX_MEMBERS:
        return None
    if not all(_MEMBER.fullmatch(m) for m in members):
        return None
    return ",".join(members)


def from_headers(
    traceparent: Sequence[bytes] | None, tracestate: Sequence[bytes] | None
) -> TraceContext | None:
    """A client's trace context from its header fields (None: absent or invalid).

    §3.2: more than one ``traceparent`` field is invalid.
    """
    if not traceparent or len(traceparent) != 1:
        return None
    parsed = parse_traceparent(traceparent[0].decode("latin-1").strip())
    if parsed is None:
        return None
    state = parse_tracestate([v.decode("latin-1") for v in tracestate]) if tracestate else None
    return TraceContext(*parsed, state=state)


def from_meta(meta: Any) -> TraceContext | None:
    """A request's trace context from its ``_meta`` (SEP-414; None: absent or invalid)."""
    if not isinstance(meta, dict):
        return None
    traceparent = meta.get(META_TRACEPARENT)
    if not isinstance(traceparent, str):
        return None
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    tracestate = meta.get(META_TRACESTATE)
    state = parse_tracestate([tracestate]) if isinstance(tracestate, str) else None
    return TraceContext(*parsed, state=state)
