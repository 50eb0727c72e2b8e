"""The merged event id of a session's GET stream: every backend's last event id, sealed.

aigw merges every backend's GET stream into the client's one (``gateway/streams.py``);
each event it writes carries, as its SSE ``id``, the last event id of every backend so
far, and the client sends it back as ``Last-Event-ID`` to resume, possibly to another
aigw process holding the same key (``docs/scale-out.md``).  aigw passes each backend's
part to that backend as its own ``Last-Event-ID``.

Sealed (purpose ``event-id``) and bound to the session (its ``session_binding``, as
associated data, as cursors are): a client can neither forge one nor take another
session's.  Unsealed, a client could name any id to its backend sessions, and a backend
keeping one event store for every session, with ids one can guess, would replay another
user's events; MCP 2025-11-25 basic/transports "Resumability and Redelivery" forbids it
("The server MUST NOT replay messages that would have been delivered on a different
stream"), but aigw stands in front of backends that are not hardened, and fails closed:
an id that does not open resumes every backend from nowhere (``InvalidEventId``).

Sealed with a random nonce, not deterministically: the same section asks that an event
id be "globally unique across all streams within that session", and aigw writes the same
backends' ids more than once (its own messages, ``list_changed`` after a reload, a
resumed stream's priming event); a random nonce makes each id it writes a new one.  It
costs one AES-GCM seal of at most ``MAX_EVENT_ID_BYTES`` per event on a GET stream
(notifications, not the ``tools/call`` path), and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from aigw.sealed.sealer import Sealer, SealError, plaintext_room

#: The longest merged id written and read: it goes out on every event and comes back in
#: a header.
MAX_EVENT_ID_BYTES = 4096
#: The longest backend event id the merged id carries.
MAX_BACKEND_EVENT_ID = 511
#: The most bytes of JSON whose sealed token fits in ``MAX_EVENT_ID_BYTES``.
_ROOM = plaintext_room(MAX_EVENT_ID_BYTES)


class InvalidEventId(Exception):
    """Not a merged id aigw wrote on this session's stream: forged, altered, another
    session's, of an older format, too long.  The stream resumes from nowhere."""


def carried(event_id: object) -> bool:
    """Can a backend's event id ride in the merged id?  At most ``MAX_BACKEND_EVENT_ID``
    characters, and none of NUL, CR, LF, which no SSE id holds (WHATWG HTML §9.2.6: an
    id with NUL is ignored, lines end at CR and LF) and which would go back to the
    backend in its ``Last-Event-ID`` header."""
    return (
        isinstance(event_id, str)
        and len(event_id) <= MAX_BACKEND_EVENT_ID
        and "\0" not in event_id
        and "\r" not in event_id
        and "\n" not in event_id
    )


def _size(name: str, event_id: str) -> int:
    """At least the bytes ``"name":"id",`` takes in the JSON the sealer writes: escaped
    as ASCII, which is never shorter than the UTF-8 the sealer writes (nor than its own
    ASCII fallback, for lone surrogates)."""
    return len(json.dumps(name)) + len(json.dumps(event_id)) + 2


class EventIdCodec:
    """Seal and open merged event ids."""

    __slots__ = ("_sealer",)

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer.for_purpose("event-id")

    def encode(self, last_ids: Mapping[str, str], binding: str) -> str:
        """The merged id for the session of ``binding``: at most ``MAX_EVENT_ID_BYTES``
        of ``A-Z a-z 0-9 - _`` whatever the backends sent, so it fits an SSE ``id``
        line.  An id that cannot ride (``carried``) is left out, then the longest until
        the rest fits: those backends resume from nowhere, the others where they were."""
        sizes = {name: _size(name, i) for name, i in last_ids.items() if carried(i)}
        total = 2 + sum(sizes.values())
        for name in sorted(sizes, key=sizes.__getitem__, reverse=True):
            if total <= _ROOM:
                break
            total -= sizes.pop(name)
        payload = {name: last_ids[name] for name in sizes}
        return self._sealer.seal(payload, binding.encode("utf-8"))

    def decode(self, value: object, binding: str, backends: Collection[str]) -> dict[str, str]:
        """The backends' ids in a ``Last-Event-ID`` from ``encode`` for this session,
        less those of backends it no longer has; none for no value; InvalidEventId for
        anything else."""
        if value is None or value == "":
            return {}
        if not isinstance(value, str) or len(value) > MAX_EVENT_ID_BYTES:
            raise InvalidEventId("not a merged event id (too long)")
        try:
            payload = self._sealer.open(value, binding.encode("utf-8"))
        except SealError as error:
            raise InvalidEventId(f"not a merged event id of this session ({error})") from None
        if not all(carried(event_id) for event_id in payload.values()):
            raise InvalidEventId("malformed merged event id")
        return {name: event_id for name, event_id in payload.items() if name in backends}
