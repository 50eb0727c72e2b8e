"""``streams.Feeds`` in memory: one backend's GET streams as heads that never come, and
client streams of made-up sessions, for the tests of feeds (lingering, handoff)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from twisted.internet.defer import Deferred

from aigw.gateway.client_sessions import ClientSession
from aigw.gateway.limits import StreamLimits
from aigw.gateway.streams import Feeds, SessionStream
from aigw.protocol.ping import pong
from aigw.sealed.event_id import EventIdCodec
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import BackendSession, session_binding, session_digest

LEGACY = "2025-11-25"


class StreamBackend:
    """A backend's GET streams as a feed opens them: heads that never come (the feed
    reads nothing but what a test delivers), cancelled as the feed closes."""

    def __init__(self) -> None:
        self.opened: list[str | None] = []
        self.closed: list[str | None] = []
        self.deliver: dict[str | None, Any] = {}
        #: The last stream's head of each upstream session: a test ends the stream
        #: with an error (the backend's doing) through it.
        self.heads: dict[str | None, Deferred[Any]] = {}
        #: The last stream's ``on_reader`` of each upstream session: a test hands the
        #: feed a reader through it (one that read a ``retry``).
        self.on_reader: dict[str | None, Any] = {}
        #: The ``Last-Event-ID`` of each GET, in order (None: opened fresh).
        self.resumed_from: list[str | None] = []

    def get_stream(
        self, deliver: Any, session_id: str | None, *args: Any, **kwargs: Any
    ) -> Deferred[Any]:
        self.opened.append(session_id)
        self.resumed_from.append(args[1])
        self.deliver[session_id] = deliver
        self.on_reader[session_id] = args[2]
        head: Deferred[Any] = Deferred(lambda _: self.closed.append(session_id))
        self.heads[session_id] = head
        return head


class FeedsOfOneBackend:
    """``Feeds`` over one backend, ``alpha`` (a ``StreamBackend``), recording what aigw
    answers the backend itself: requests no client stream took, and pings."""

    def __init__(self, clock: Any, linger: float = 5.0, limits: StreamLimits | None = None):
        self.backend = StreamBackend()
        #: (upstream session, request, reason) of each backend request answered by aigw.
        self.unreachable: list[tuple[str | None, Any, str]] = []
        #: (upstream session, ping) of each ping answered by aigw.
        self.pinged: list[tuple[str | None, Any]] = []
        #: The feeds' transports by name (a reload changes this mapping in place).
        self.transports: dict[str, Any] = {"alpha": self.backend}
        self.feeds = Feeds(
            self.transports,
            clock,
            lambda backend: linger,
            limits or StreamLimits(100, 100),
            lambda upstream, principal, message, why, reason: self.unreachable.append(
                (upstream.session_id, message, reason)
            ),
            self._pinged,
        )

    def _pinged(self, upstream: BackendSession, principal: Any, message: Any) -> bool:
        """As ``Exchange.pinged`` decides: a ping is what ``pong`` answers."""
        if pong(message) is None:
            return False
        self.pinged.append((upstream.session_id, message))
        return True

    def stream(
        self,
        session_id: str,
        user: str = "alice",
        received: list[Any] | None = None,
        resumes_from: str | None = None,
    ) -> SessionStream:
        """A client GET stream of the session ``session_id`` of ``user`` (upstream
        session ``up-<session_id>`` at alpha), started (resuming from alpha's event
        ``resumes_from``); what reaches it from the backend goes to ``received``."""
        session = SimpleNamespace(
            session_id=session_id,
            binding=session_binding(session_digest(session_id)),
            principal=SimpleNamespace(user=("issuer", user)),
            backends={"alpha": BackendSession("alpha", f"up-{session_id}", LEGACY)},
        )
        sink = received if received is not None else []
        stream = SessionStream(
            self.feeds,
            lambda session, name, message, emit: sink.append(message),
            cast(ClientSession, session),
            lambda data: None,
            EventIdCodec(Sealer(b"e" * 32)),
            {"alpha": resumes_from} if resumes_from else {},
        )
        stream.start()
        return stream
