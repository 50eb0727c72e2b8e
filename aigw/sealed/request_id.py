"""Ids of requests relayed from a backend to the client.

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
state (basic/utilities/cancellation).

aigw's own requests to a client (asked on a 2026-07-28 backend's behalf,
``gateway/asking.py``) carry an id of the same kind naming the question and
the process waiting for its answer instead of a backend.
"""

from __future__ import annotations

from aigw.protocol.jsonrpc import JsonRpcId
from aigw.sealed.sealer import Sealer, SealError


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
    """Wrap and unwrap relayed request ids."""

    __slots__ = ("_ids",)

    def __init__(self, sealer: Sealer) -> None:
        self._ids = sealer.for_purpose("request-id")

    def wrap(self, backend: str, upstream_id: JsonRpcId, session_binding: str) -> str:
        """The id the client sees for ``backend``'s request ``upstream_id``."""
        payload = {"b": backend, "i": upstream_id}
        return self._ids.seal(payload, session_binding.encode("utf-8"), deterministic=True)

    def unwrap(self, value: object, session_binding: str) -> tuple[str, JsonRpcId]:
        """``(backend, upstream id)`` of an id from ``wrap``; InvalidId otherwise."""
        return _open(self._ids, value, session_binding)

    def wrap_own(
        self, process: str, key: str, session_binding: str, peer_url: str | None = None
    ) -> str:
        """The id of aigw's own request ``key``, asked by ``process`` (reachable by its
        peers at ``peer_url``), in this session."""
        payload = {"p": process, "k": key, "u": peer_url}
        return self._ids.seal(payload, session_binding.encode("utf-8"))

    def unwrap_own(self, value: object, session_binding: str) -> tuple[str, str, str | None]:
        """``(process, key, peer_url)`` of an id from ``wrap_own``; InvalidId otherwise."""
        try:
            payload = self._ids.open(value, session_binding.encode("utf-8"))
        except SealError:
            raise InvalidId("not an id of this session") from None
        process, key, peer = payload.get("p"), payload.get("k"), payload.get("u")
        if (
            not isinstance(process, str)
            or not isinstance(key, str)
            or not (peer is None or isinstance(peer, str))
        ):
            raise InvalidId("not one of aigw's own requests")
        return process, key, peer
