"""The client's log level, carried to both kinds of backend.

A session client sets it once with ``logging/setLevel`` (2025-11-25
server/utilities/logging): session backends get the request as it is; a
2026-07-28 backend has no such method and takes the level on each request
instead (``io.modelcontextprotocol/logLevel`` in ``_meta``, 2026-07-28
server/utilities/logging "Per-request log level"), so aigw remembers the
session's level and puts it on every later request to it.  The level is
remembered in this process, bounded (the session id cannot change after
``initialize``, so it cannot carry it): another process serving the session
sends no level to 2026-07-28 backends, which then send no log messages, what
2025-11-25 allows before any ``logging/setLevel``.

A 2026-07-28 client sets the level per request.  A 2026-07-28 backend gets it
in the envelope.  A session backend, shared by every request of the user (the
pool), is not sent ``logging/setLevel``: that would change the level of the
user's other requests in flight.  aigw filters instead, on the request's
stream, which is exactly what the client asked for: no ``notifications/message``
without a level ("MUST NOT emit ... for a request that does not include this
field"), and none below it.  A session client's level is held the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigw.gateway.errors import GatewayError
from aigw.lru import LRU
from aigw.protocol import jsonrpc
from aigw.protocol.log_levels import LOG_LEVELS, at_least, is_level
from aigw.protocol.versions import is_modern

if TYPE_CHECKING:
    from aigw.gateway.client_sessions import ClientSession
    from aigw.gateway.exchange import Exchange

#: Session clients whose level this process remembers (a binding and a word each).
REMEMBERED_MAX = 10000
LOG_MESSAGE = "notifications/message"


def checked_level(value: Any) -> str:
    """A level from a client, or -32602 (server/utilities/logging "Error Handling")."""
    if not is_level(value):
        raise GatewayError(
            jsonrpc.INVALID_PARAMS,
            f"invalid log level {value!r}; one of: {', '.join(LOG_LEVELS)}",
        )
    assert isinstance(value, str)
    return value


def passes(session: ClientSession, message: dict[str, Any]) -> bool:
    """May this backend message reach the client?  Everything but log messages does;
    those only at or above the client's level.  Without a level, a 2026-07-28 request
    gets none and a session client all (2025-11-25: before ``logging/setLevel`` the
    server decides); with one, aigw holds every backend to it, whether or not the
    backend filters itself (the ``mcp`` SDK's servers leave it to the application)."""
    if message.get("method") != LOG_MESSAGE:
        return True
    if session.log_level is None:
        return not session.sessionless
    params = message.get("params")
    return at_least(params.get("level") if isinstance(params, dict) else None, session.log_level)


class LogLevels:
    """Session clients' levels, by binding: set by ``logging/setLevel``, read as a
    session is opened."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self._levels: LRU[str, str] = LRU(REMEMBERED_MAX)

    def of(self, binding: str) -> str | None:
        return self._levels.get(binding)

    async def set_level(self, session: ClientSession, params: dict[str, Any]) -> None:
        """``logging/setLevel``: to the session backends that log, and remembered for
        the 2026-07-28 ones (each later request carries it)."""
        level = checked_level(params.get("level"))
        self._levels.put(session.binding, level)
        session.log_level = level
        names = [
            name
            for name, backend in session.backends.items()
            if isinstance(backend.capabilities.get("logging"), dict)
            and not is_modern(backend.protocol_version)
        ]
        await self.exchange.broadcast(session, names, "logging/setLevel", params)
