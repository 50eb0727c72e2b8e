"""List requests: fanned out to every backend that has the capability, merged in config order.

aigw's cursor carries each backend's own cursor, so a backend whose list spans
several pages is listed completely (MCP utilities/pagination).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from aigw.gateway.errors import GatewayError
from aigw.gateway.fanout import fan_out
from aigw.gateway.record import RequestRecord
from aigw.protocol import jsonrpc
from aigw.sealed.cursor import CursorCodec, InvalidCursor
from aigw.upstream.api import UpstreamError

if TYPE_CHECKING:
    from aigw.gateway.backends import BackendSessions
    from aigw.gateway.catalog import Catalog
    from aigw.gateway.client_sessions import ClientSession
    from aigw.gateway.exchange import Exchange
    from aigw.gateway.relay import Emit

#: The list methods, the key of their items, and the capability they need.
LISTS: dict[str, tuple[str, str]] = {
    "tools/list": ("tools", "tools"),
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("resourceTemplates", "resources"),
}


async def list_page(
    exchange: Exchange, session: ClientSession, backend: str, method: str, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of one backend's list: its items and its next cursor (UpstreamError if none)."""
    params: dict[str, Any] = {} if cursor is None else {"cursor": cursor}
    message = await exchange.ask(session, backend, method, params)
    if message is None or "error" in message:
        detail = message["error"] if message else "cancelled"
        raise UpstreamError(backend, "refused", json.dumps(detail)[:200])
    result = message.get("result")
    key = LISTS[method][0]
    if not isinstance(result, dict) or not isinstance(result.get(key), list):
        raise UpstreamError(backend, "bad_reply", f"{method} result has no {key} list")
    next_cursor = result.get("nextCursor")
    return result[key], next_cursor if isinstance(next_cursor, str) and next_cursor else None


class Lists:
    """Answers ``tools/list``, ``prompts/list``, ``resources/list`` and templates."""

    log = Logger()

    def __init__(
        self,
        cursors: CursorCodec,
        catalog: Catalog,
        exchange: Exchange,
        backends: BackendSessions,
        clock: Any,
    ) -> None:
        self.cursors = cursors
        self.catalog = catalog
        self.exchange = exchange
        self.backends = backends
        self.clock = clock

    async def answer(
        self,
        session: ClientSession,
        request: jsonrpc.Request,
        params: dict[str, Any],
        emit: Emit,
        record: RequestRecord,
    ) -> dict[str, Any] | None:
        """The response to a list request (the time spent is the backends')."""
        result = await self.list(session, request.method, params)
        record.upstream_seconds = self.clock.seconds() - record.started
        return jsonrpc.result_response(request.id, result)

    async def list(
        self, session: ClientSession, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Fan out to every backend that has the capability; merge in config order."""
        key, capability = LISTS[method]
        cursor = params.get("cursor")
        snapshot = session.snapshot
        if cursor is None:
            await self.backends.join_missing(session)
            pending: dict[str, str | None] = {
                name: None
                for name in snapshot.order
                if name in session.backends
                and isinstance(session.backends[name].capabilities.get(capability), dict)
                and not snapshot.unmet_scopes(session.principal, name)
            }
        else:
            try:
                pending = self.cursors.decode(cursor, session.binding, method)
            except InvalidCursor:
                raise GatewayError(jsonrpc.INVALID_PARAMS, "invalid cursor") from None
        pages = await fan_out(
            [n for n in snapshot.order if n in pending],
            lambda name: list_page(self.exchange, session, name, method, pending[name]),
            self.log,
            "backend {backend} left out of {method}: {reason}",
            method=method,
        )
        items: list[Any] = []
        following: dict[str, str | None] = {}
        for name, (page_items, next_cursor) in pages:
            await self.catalog.observe(session, name, key, page_items)
            items.extend(self.catalog.expose_items(session, name, key, page_items, method))
            if next_cursor is not None:
                following[name] = next_cursor
        result: dict[str, Any] = {key: items}
        if following:
            result["nextCursor"] = self.cursors.encode(following, session.binding, method)
        return result
