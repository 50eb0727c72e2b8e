"""The session's GET stream: every backend's GET stream merged into one SSE stream.

MCP basic/transports "Listening for Messages from the Server": a backend that
answers 405 has no stream and contributes nothing; one that drops its stream is
followed again with ``Last-Event-ID`` after a bounded back-off.  Each event aigw
writes carries, as its id, the last event id of every backend so far, so a
client resuming with ``Last-Event-ID`` resumes every backend where it was.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from aigw.mcp import jsonrpc
from aigw.mcp.protocol import META_PREFIX, is_modern
from aigw.mcp.revision import MODERN, envelope, routing_headers
from aigw.mcp.sse import format_event
from aigw.mcp.upstream import UpstreamError, UpstreamSessionGone

if TYPE_CHECKING:
    from aigw.mcp.gateway import ClientSession, Gateway

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
MAX_EVENT_ID_BYTES = 4096


_listen_ids = itertools.count(1)
_SUBSCRIPTION_ID = META_PREFIX + "subscriptionId"
#: What aigw listens for on a 2026-07-28 backend: what a GET stream carried.
LISTEN_FILTER = {"toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True}


def listen_request(request_id: int) -> dict[str, Any]:
    """``subscriptions/listen`` toward a 2026-07-28 backend, in place of its GET stream
    (basic/patterns/subscriptions)."""
    params = envelope({"notifications": LISTEN_FILTER}, MODERN)
    return {"jsonrpc": "2.0", "id": request_id, "method": "subscriptions/listen", "params": params}


def unlisten(message: Any) -> Any:
    """A backend's listen-stream message as a GET-stream message: the acknowledgment and
    the closing response are aigw's business, the subscription id is the backend's."""
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    if message["method"] == "notifications/subscriptions/acknowledged":
        return None
    params = message.get("params")
    if isinstance(params, dict) and isinstance(params.get("_meta"), dict):
        meta = {k: v for k, v in params["_meta"].items() if k != _SUBSCRIPTION_ID}
        params = {k: v for k, v in params.items() if k != "_meta"}
        if meta:
            params["_meta"] = meta
        return {**message, "params": params}
    return message


def encode_event_ids(last_ids: dict[str, str]) -> str:
    raw = json.dumps(last_ids, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_event_ids(value: str | None, backends: set[str]) -> dict[str, str]:
    """The per-backend ids inside a ``Last-Event-ID``; anything unreadable means none."""
    if not value or len(value) > MAX_EVENT_ID_BYTES:
        return {}
    try:
        decoded = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except ValueError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {
        k: v for k, v in decoded.items() if k in backends and isinstance(v, str) and len(v) < 512
    }


class SessionStream:
    """One client's GET stream, fed by each backend of its session."""

    log = Logger()

    def __init__(
        self,
        gateway: Gateway,
        session: ClientSession,
        write: Callable[[bytes], None],
        last_event_id: str | None,
    ) -> None:
        self.gateway = gateway
        self.session = session
        self.write = write
        self.closed = False
        self.on_close: Callable[[], None] | None = None
        self.last_ids = decode_event_ids(last_event_id, set(session.backends))
        self._readers: dict[str, Any] = {}

    def start(self) -> None:
        for name, backend in self.session.backends.items():
            if backend.session_id is not None or is_modern(backend.protocol_version):
                ensureDeferred(self._follow(name))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for reader in self._readers.values():
            reader.stop()
        if self.on_close is not None:
            self.on_close()

    async def _follow(self, name: str) -> None:
        """Keep one backend's stream open while the client's is."""
        delay = BACKOFF_FIRST
        upstream = self.gateway.upstreams[name]
        while not self.closed:
            backend = self.session.backends[name]
            try:
                if is_modern(backend.protocol_version):
                    reply = await upstream.listen(
                        jsonrpc.dumps(listen_request(next(_listen_ids))),
                        lambda message: self._relay(name, unlisten(message)),
                        backend.protocol_version,
                        routing_headers("subscriptions/listen", {}),
                        lambda reader: self._reading(name, reader),
                    )
                else:
                    reply = await upstream.get_stream(
                        lambda message: self._relay(name, message),
                        backend.session_id,
                        backend.protocol_version,
                        self.last_ids.get(name),
                        lambda reader: self._reading(name, reader),
                    )
                if reply.status == 405:
                    return  # this backend offers no stream
                delay = BACKOFF_FIRST
            except UpstreamSessionGone:
                self.log.info("backend {backend} ended its session stream", backend=name)
                return
            except UpstreamError as error:
                if self.closed:
                    return
                self.log.info(
                    "stream from {backend} lost ({error}); again in {delay}s",
                    backend=name,
                    error=str(error),
                    delay=delay,
                )
            finally:
                reader = self._readers.pop(name, None)
                if reader is not None and reader.last_event_id is not None:
                    self.last_ids[name] = reader.last_event_id
            if self.closed:
                return
            await deferLater(self.gateway.clock, delay, lambda: None)
            delay = min(delay * 2, BACKOFF_MAX)

    def _reading(self, name: str, reader: Any) -> None:
        """An upstream stream began.  If the client left while it was opening, it is
        dropped at once: nothing would stop it later, and it would hold the upstream
        session's stream (servers allow one per session: 2025-11-25 basic/transports
        "Listening for Messages from the Server", "Multiple Connections") until the
        session ends, so the next listen of the same user would get 409 forever."""
        if self.closed:
            reader.stop()
            return
        self._readers[name] = reader

    def _relay(self, name: str, message: Any) -> None:
        if self.closed or message is None:
            return
        reader = self._readers.get(name)
        if reader is not None and reader.last_event_id is not None:
            self.last_ids[name] = reader.last_event_id
        self.gateway.relay(self.session, name, message, self._emit)

    def _emit(self, message: dict[str, Any]) -> None:
        event_id = encode_event_ids(self.last_ids) if self.last_ids else None
        self.write(format_event(jsonrpc.dumps(message), event_id=event_id))
