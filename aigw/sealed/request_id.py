"""Ids of requests relayed from a backend to the client, and progress tokens.

Backends send requests to the client (``sampling/createMessage``,
``elicitation/create``, ``roots/list``: MCP 2025-11-25 client/*) over the one
client session, so ids from different backends could clash and the client's
answer must find its way back to the backend that asked.  aigw replaces such an
id with a sealed token naming the backend and its original id, bound to the
client session: a client cannot forge one, nor route an answer to another
backend or another session (basic/transports: responses go back to the
sender; basic "Responses": the id is the request's).

Wrapping is deterministic (see ``sealing``): the same backend, id and session
always give the same token, so an upstream ``notifications/cancelled`` naming
its own request id can be relayed with the token the client saw, without any
state (basic/utilities/cancellation).  Progress tokens in relayed requests'
``_meta`` (basic/utilities/progress) are wrapped the same way under their own
key, so the client's progress notifications reach the right backend.
"""

from __future__ import annotations

from aigw.protocol.jsonrpc import JsonRpcId
from aigw.sealed.sealer import Sealer, SealError

#: MCP basic/utilities/progress: "a string or integer value".
ProgressToken = str | int


class InvalidId(Exception):
    """Not an id aigw wrapped for this session: forged, altered, or another session's."""


def _open(sealer: Sealer, value: object, binding: str) -> tuple[str, JsonRpcId]:
    try:
        payload = sealer.open(value, binding.encode("utf-8"))
    except SealError:
        raise InvalidId("not an id of this session") from None
    backend = payload.get("b")
    inner = payload.get("i")
    if not isinstance(backend, str) or not (
        isinstance(inner, str) or (isinstance(inner, int) and not isinstance(inner, bool))
    ):
        raise InvalidId("malformed id")
    return backend, inner


class RequestIdCodec:
    """Wrap and unwrap relayed request ids and progress tokens."""

    __slots__ = ("_ids", "_tokens")

    def __init__(self, sealer: Sealer) -> None:
        self._ids = sealer.for_purpose("request-id")
        self._tokens = sealer.for_purpose("progress-token")

    def wrap(self, backend: str, upstream_id: JsonRpcId, session_binding: str) -> str:
        """The id the client sees for ``backend``'s request ``upstream_id``."""
        payload = {"b": backend, "i": upstream_id}
        return self._ids.seal(payload, session_binding.encode("utf-8"), deterministic=True)

    def unwrap(self, value: object, session_binding: str) -> tuple[str, JsonRpcId]:
        """``(backend, upstream id)`` of an id from ``wrap``; InvalidId otherwise."""
        return _open(self._ids, value, session_binding)

    def wrap_progress_token(self, backend: str, token: ProgressToken, session_binding: str) -> str:
        """The progress token the client sees for ``backend``'s ``token``."""
        payload = {"b": backend, "i": token}
        return self._tokens.seal(payload, session_binding.encode("utf-8"), deterministic=True)

    def unwrap_progress_token(
        self, value: object, session_binding: str
    ) -> tuple[str, ProgressToken]:
        """``(backend, token)`` of a token from ``wrap_progress_token``; InvalidId otherwise."""
        return _open(self._tokens, value, session_binding)
