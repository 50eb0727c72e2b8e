"""The gateway's pagination cursor: each backend's own cursor, sealed.

A list (``tools/list``, ``prompts/list``, ``resources/list``,
``resources/templates/list``) fans out to every backend and each may paginate
on its own (MCP 2025-11-25 server/utilities/pagination).  aigw's cursor holds
the backends still to be listed and, for each, its next cursor (None: not
started, the first page is due); a backend absent from it is done.

Cursors are opaque to clients ("Cursors MUST be treated as opaque tokens"):
aigw's is sealed (purpose ``cursor``) and bound to the session and the list
method, so a client can neither forge one nor replay it on another session or
list.  Anything that does not open raises ``InvalidCursor``, answered with
-32602 Invalid params, as "Error Handling" in that section says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aigw.sealed.sealer import Sealer, SealError

#: Backend name -> that backend's next cursor (None: start from its first page).
CursorState = dict[str, str | None]


class InvalidCursor(Exception):
    """Not a cursor aigw issued for this session and this list: -32602."""


def _bound(binding: str, method: str) -> bytes:
    return json.dumps([binding, method]).encode("ascii")


class CursorCodec:
    """Encode and decode the gateway's cursors."""

    __slots__ = ("_sealer",)

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer.for_purpose("cursor")

    def encode(self, pending: Mapping[str, str | None], binding: str, method: str) -> str:
        """The cursor that continues ``method`` on this session with ``pending``."""
        return self._sealer.seal({"p": list(pending.items())}, _bound(binding, method))

    def decode(self, cursor: object, binding: str, method: str) -> CursorState:
        """The pending backends of a cursor from ``encode``; InvalidCursor otherwise."""
        try:
            payload = self._sealer.open(cursor, _bound(binding, method))
        except SealError:
            raise InvalidCursor("not a cursor of this session and list") from None
        pairs = payload.get("p")
        if not isinstance(pairs, list):
            raise InvalidCursor("malformed cursor")
        state: CursorState = {}
        for pair in pairs:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not isinstance(pair[0], str)
                or not (pair[1] is None or isinstance(pair[1], str))
            ):
                raise InvalidCursor("malformed cursor")
            state[pair[0]] = pair[1]
        return state
