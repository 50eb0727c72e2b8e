"""The seams of the upstream layer: how a backend is reached, and what a request carries.

``UpstreamTransport`` is what the gateway talks to for one backend: Streamable HTTP
today (``client.Upstream``), a child process over stdio next.  ``UpstreamCredentials``
is asked, per request and with the principal the request is made for, which headers
prove the gateway's (never the user's) right to call the backend: static headers, the
gateway's own OAuth token (client credentials) or one exchanged for the user's (RFC
8693), claims as headers (``credentials.build_credentials``).  The user's own token
is never among them (MCP Authorization, "Access Token Privilege Restriction").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from aigw.principal import Principal

#: A sink receives each JSON-RPC message (a decoded JSON value) as it arrives.
MessageSink = Callable[[Any], None]
#: Header fields as they go on the wire.
HeaderFields = Sequence[tuple[bytes, bytes]]


def ignore(message: Any) -> None:
    """Sink for replies whose content does not matter (notifications, answers, DELETE)."""


class UpstreamError(Exception):
    """The backend could not answer; ``kind`` says how, ``detail`` says what was seen."""

    def __init__(self, backend: str, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(backend, kind, detail)
        self.backend = backend
        self.kind = kind
        self.detail = detail
        self.status = status

    def __str__(self) -> str:
        return f"backend {self.backend!r} {self.kind}: {self.detail}"


class UpstreamSessionGone(UpstreamError):
    """The backend answered 404 to our session id: it forgot the session (restart, expiry)."""


#: The ``kind`` of ``AuthorizationRequired`` (``gateway/errors.py`` answers it).
AUTHORIZATION_REQUIRED = "authorization_required"


class AuthorizationRequired(UpstreamError):
    """The user must authorize aigw at a ``user_oauth`` backend first: open ``url``
    (until ``expires_at``, on the clock's time).

    Raised by ``user_oauth.py``; defined here, with the layer's other errors, so that
    the gateway answers it without importing the user_oauth machinery, which only a
    config with a token store loads."""

    def __init__(
        self, backend: str, elicitation_id: str, url: str, why: str, expires_at: float
    ) -> None:
        super().__init__(backend, AUTHORIZATION_REQUIRED, why)
        self.elicitation_id = elicitation_id
        self.url = url
        self.expires_at = expires_at


@attrs.frozen
class Reply:
    """What an exchange ended with, beyond the messages already handed to the sink."""

    status: int
    session_id: str | None
    content_type: str


class BodyReader(Protocol):
    """A reply being read: the caller may stop it early (cancelled) or finish it
    (the answer it waited for is in), and pause and resume it while the client it
    feeds is behind (``gateway/flow.py``)."""

    @property
    def session_id(self) -> str | None:
        """The upstream session the reply belongs to, known from its head before any
        of its body: the ``Mcp-Session-Id`` it assigned (an ``initialize``'s), else the
        request's; None for none.  What a ping on the reply is answered on
        (``gateway/exchange.py`` ``OwnCollector``)."""
        ...

    def stop(self) -> None: ...

    def finish(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


class UpstreamCredentials(Protocol):
    """The headers that authenticate the gateway to one backend, for one request."""

    async def headers(self, principal: Principal | None) -> HeaderFields:
        """Header fields for a request made on behalf of ``principal`` (None: the
        gateway's own housekeeping, such as ending a session).  Raises
        ``UpstreamError`` when no credentials can be had (the request fails with a
        JSON-RPC error naming the backend)."""
        ...

    async def refused(self, principal: Principal | None) -> None:
        """The backend answered 401 to what ``headers`` gave for ``principal``: drop it
        (a user's own token: raise the error that sends the user to authorize again)."""
        ...


class UpstreamTransport(Protocol):
    """One backend, as the gateway talks to it (MCP basic/transports)."""

    name: str

    async def post(
        self,
        body: bytes,
        sink: MessageSink,
        session_id: str | None = None,
        protocol_version: str | None = None,
        on_reader: Callable[[BodyReader], None] | None = None,
        extra_headers: dict[bytes, bytes] | None = None,
        principal: Principal | None = None,
    ) -> Reply:
        """Send one JSON-RPC message; each message of the reply goes to ``sink``."""
        ...

    async def respond(
        self,
        body: bytes,
        session_id: str | None,
        protocol_version: str | None,
        principal: Principal | None = None,
    ) -> None:
        """Send one JSON-RPC response to the backend's request (2025-11-25
        basic/transports "Sending Messages to the Server": a POST of its own), or a
        notification that concerns requests in flight (``notifications/cancelled``).  It
        never waits behind requests, whose replies may be waiting for it."""
        ...

    async def listen(
        self,
        body: bytes,
        sink: MessageSink,
        protocol_version: str,
        extra_headers: dict[bytes, bytes],
        on_reader: Callable[[BodyReader], None],
        principal: Principal | None = None,
    ) -> Reply:
        """A 2026-07-28 ``subscriptions/listen``, read for as long as it lasts."""
        ...

    async def get_stream(
        self,
        sink: MessageSink,
        session_id: str | None,
        protocol_version: str | None,
        last_event_id: str | None,
        on_reader: Callable[[BodyReader], None],
        principal: Principal | None = None,
        on_event_id: Callable[[str], None] | None = None,
    ) -> Reply:
        """The session's server-to-client stream (status 405: the backend has none).

        ``on_event_id`` hears of each event that moves the stream's last event id
        without a message: a priming event (2025-11-25 basic/transports "Sending
        Messages to the Server", SEP-1699: an id and empty data), which a stream
        resumed from it must not be opened fresh for want of."""
        ...

    async def delete(
        self, session_id: str, protocol_version: str | None, principal: Principal | None = None
    ) -> int:
        """End an upstream session; the status the backend answered."""
        ...

    async def close(self) -> None:
        """Close every connection (shutdown)."""
        ...
