"""The session's GET stream: every backend's GET stream merged into one SSE stream.

MCP basic/transports "Listening for Messages from the Server": a backend that
answers 405 has no stream and contributes nothing; one that drops its stream is
followed again with ``Last-Event-ID`` after a bounded back-off.  Each event aigw
writes carries, as its id, the last event id of every backend so far, sealed and
bound to the session (``sealed/event_id.py``), so a client resuming with
``Last-Event-ID`` resumes every backend where it was, and only from where aigw told
it its own session was.

Upstream streams are shared (``UpstreamFeed``): one per backend session, fanned
out to every client stream of the user (or session) that needs it, so a user's
listens cost one upstream socket per backend, not one per listen.  The first
stream's ``Last-Event-ID`` seeds a new feed; a session has one GET stream at a
time (``limits.py``), so a resuming GET stream finds no other stream on its feed.
A feed whose last client stream closed lingers (``linger.py``) for the next one:
it takes the feed and what the backend sent meanwhile, when it resumes from where
the last one left off, from a little before (the last messages it lost are sent
again: ``UpstreamFeed.recent``) or from nowhere; otherwise the lingering feed is
closed and the stream's own feed asks the backend to replay from its
``Last-Event-ID`` once the lingering one's upstream stream is closed
(``Feeds.subscribe``), so that the backend, which allows one stream per session,
does not answer 409.

Behind a balancer the reopened GET may land on another process, which cannot take this
one's lingering feed, and whose own upstream stream the backend would refuse (409) while
the lingering one holds the session's one stream.  So with ``sessions.redis_url`` a
process whose client stream of a session starts tells the others (``tell_opened``,
``shared_stream_probes.py``); one lingering a feed of that session ends it at once
(``opened_elsewhere``), as if its linger had expired: the backend frees the stream for
the new process and what it sends goes there, not to a linger nobody will take.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from aigw.gateway.capabilities import union_capabilities
from aigw.gateway.groups import Groups
from aigw.gateway.limits import StreamLimits
from aigw.gateway.linger import MAX_HELD, MAX_HELD_BYTES, Held, Linger, Recent, after
from aigw.gateway.resource_subscriptions import ResourceSubscriptions
from aigw.protocol import jsonrpc
from aigw.protocol.revision import listen_request, routing_headers
from aigw.protocol.sse import format_event
from aigw.protocol.versions import META_SUBSCRIPTION_ID, is_modern
from aigw.sealed.event_id import MAX_BACKEND_EVENT_ID, EventIdCodec, carried
from aigw.sealed.session_id import session_binding, session_digest
from aigw.upstream.api import Reply, UpstreamError, UpstreamSessionGone, UpstreamTransport

if TYPE_CHECKING:
    from aigw.gateway.client_sessions import ClientSession
    from aigw.gateway.relay import ToClient
    from aigw.principal import Principal, UserKey
    from aigw.sealed.session_id import BackendSession

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
#: A backend stream that lasted this long resets the back-off to ``BACKOFF_FIRST``; one
#: ended sooner (a 200 that is not SSE, a stream closed at once) counts as a failure,
#: or a backend doing so every time is followed again twice a second for ever (the
#: ``mcp`` SDK's client does that: modelcontextprotocol/python-sdk#3257).  As a stdio
#: child's restarts (``upstream/stdio_session.py`` ``STABLE_SECONDS``).
STABLE_SECONDS = 10.0
#: The longest a new feed waits for the closing feed of the same upstream session to
#: end before opening its stream (``Feeds.subscribe``): closing is an abort, done in a
#: reactor turn, whether the closing stream's head came or not (``UpstreamFeed.close``);
#: this bounds the wait should an end ever be slower.
CLOSE_WAIT = 2.0
#: Then how long it lets the backend see the close: a backend learns of it only as it
#: handles the reset connection, and may run a request that reached it at the same time
#: first (Node.js emits a socket's close in a later phase of its event loop than the one
#: that reads a request; the TypeScript SDK then answers 409).
CLOSE_SETTLE = 0.1
#: The lists a reload may change, each with its ``notifications/<kind>/list_changed``.
LIST_KINDS = ("tools", "prompts", "resources")


_listen_ids = itertools.count(1)
#: (backend, client binding, upstream session id): what one upstream stream serves.
FeedKey = tuple[str, str, str]
#: ``Relay.unreachable``: answers a backend's request no client stream took, with
#: (upstream session, whose it is, the request, why, ``error.data.reason``).
Unreachable = Callable[["BackendSession", "Principal", dict[str, Any], str, str], None]
#: ``Exchange.pinged``: whether a backend's message is its ping, then answered by aigw
#: at once on (upstream session, whose it is) (``protocol/ping.py``).
Pinged = Callable[["BackendSession", "Principal", Any], bool]


def unlisten(message: Any) -> Any:
    """A backend's listen-stream message as a GET-stream message: the acknowledgment and
    the closing response are aigw's business, the subscription id is the backend's."""
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    if message["method"] == "notifications/subscriptions/acknowledged":
        return None
    params = message.get("params")
    if isinstance(params, dict) and isinstance(params.get("_meta"), dict):
        meta = {k: v for k, v in params["_meta"].items() if k != META_SUBSCRIPTION_ID}
        params = {k: v for k, v in params.items() if k != "_meta"}
        if meta:
            params["_meta"] = meta
        return {**message, "params": params}
    return message


def _polled(reader: Any) -> bool:
    """Did the backend end its stream on purpose, to be polled?  2025-11-25
    basic/transports (SEP-1699): a server MAY close the stream once it sent an event id,
    and the client reconnects after the stream's ``retry``, not after a back-off grown
    by every such close (a backend polled so would be followed ever more slowly, up to
    ``BACKOFF_MAX``, and its requests on the stream wait as long).  So a clean end of a
    stream that carried an event id and a ``retry`` resets the back-off; the wait is
    then the ``retry``, never below ``BACKOFF_FIRST`` (``UpstreamFeed._wait``)."""
    return reader is not None and reader.last_event_id is not None and reader.retry is not None


class UpstreamFeed:
    """One backend's stream (a GET stream, or a listen on a 2026-07-28 backend) for one
    upstream session, shared by every client stream that needs it.

    MCP SDK servers allow one GET stream per session and answer a second with 409
    (2025-11-25 basic/transports "Listening for Messages from the Server"), and a
    user's 2026-07-28 listens all ride on the user's pooled upstream sessions: so
    aigw opens one upstream stream per backend session (``FeedKey``) and fans its
    notifications out to the client streams subscribed to it.  A server-to-client
    request goes to one subscriber only (basic/transports "Multiple Connections":
    each message on one stream), so it is answered once.  The feed follows its
    stream again after a bounded back-off when it drops, with its own
    ``Last-Event-ID``; it ends when its last subscriber has left for the backend's
    ``stream_linger`` and no other came (``linger.py``).  Reads have no
    inactivity timeout, on purpose: a quiet stream is a healthy one.

    While any subscriber's client is behind, the feed stops reading (``pause``):
    a feed serves one user (or one session), so a slow client holds back only its
    own user's streams, and aigw never queues what the client does not read.
    """

    log = Logger()

    def __init__(
        self,
        feeds: Feeds,
        key: FeedKey,
        backend: BackendSession,
        last_event_id: str | None,
        principal: Principal,
    ) -> None:
        self.feeds = feeds
        self.key = key
        self.name = backend.name
        self.backend = backend
        self.last_event_id = last_event_id
        #: Whose upstream session this is: the user the feed's streams belong to.
        self.principal = principal
        self.subscribers: list[SessionStream] = []
        self.closed = False
        self._reader: Any = None
        #: Set: the listen's filter changed; the stream is re-sent at once, no back-off.
        self._refilter = False
        #: Subscribers whose client is behind (``gateway/flow.py``).
        self._behind: set[SessionStream] = set()
        #: Set while the feed has no subscriber and waits for the next (``linger.py``).
        self.lingering: Linger | None = None
        #: The last messages delivered that came with an event id (or after one), oldest
        #: first, with it: sent again to a stream resuming from one of them (``resumes``).
        self.recent = Recent()
        #: A wait (back-off, ``CLOSE_SETTLE``) before the stream is followed; cancelled
        #: by ``close``.
        self._sleep: Deferred[None] | None = None
        #: The upstream stream being opened or read (``_follow``); cancelled by ``close``
        #: while its head has not come (then there is no reader to stop).
        self._opening: Deferred[Reply] | None = None
        #: The backend's last SSE ``retry`` (milliseconds), waited before each stream
        #: is followed again (``_follow``).
        self._retry: int | None = None
        #: Fired by ``run``'s end: no upstream stream of the feed is open or opening.
        self._ended = False
        self._end_waiters: list[Deferred[None]] = []

    def resumes(self, last_event_id: str | None) -> list[Held] | None:
        """Can a client stream resuming from ``last_event_id`` take this lingering feed?
        None if not; else what it gets again before what was held: nothing when it
        resumes from nowhere or from where the last stream left off, the messages after
        its id when that is among the last delivered (``recent``)."""
        if self.lingering is None or last_event_id in (None, self.lingering.since):
            return []
        return after(self.recent, last_event_id)

    def add(self, stream: SessionStream, again: Sequence[Held] = ()) -> None:
        """``stream`` joins; if the feed lingered, it gets ``again`` (``resumes``), then
        what was held meanwhile (oldest first; a backend's request among them is its to
        answer, or to refuse as any request it cannot take is: ``Relay.to_client``,
        ``ListenStream``)."""
        self.subscribers.append(stream)
        lingering, self.lingering = self.lingering, None
        if lingering is None:
            return
        self.feeds.stops_lingering(self)
        self._report_dropped(lingering)
        for _ in again:  # the tail of recent: kept again below, as delivered again
            self.recent.pop()
        for message, event_id in [*again, *lingering.end()]:
            if event_id is not None:
                self.recent.append((message, event_id))
            stream.receive(self.name, message, event_id)

    def remove(self, stream: SessionStream) -> None:
        if stream in self.subscribers:
            self.subscribers.remove(stream)
        self.caught_up(stream)
        if not self.subscribers and not self.closed:
            seconds = self.feeds.linger(self.name)
            if seconds > 0:
                self.lingering = Linger(self.feeds.clock, seconds, self.close, self.last_event_id)
                self.feeds.lingers(self)
            else:
                self.close()

    def behind(self, stream: SessionStream) -> None:
        """``stream``'s client stopped reading: so does the feed, until it catches up."""
        if not self._behind and self._reader is not None:
            self._reader.pause()
        self._behind.add(stream)

    def caught_up(self, stream: SessionStream) -> None:
        if stream not in self._behind:
            return
        self._behind.discard(stream)
        if not self._behind and self._reader is not None:
            self._reader.resume()

    def close(self, replays: bool = False) -> None:
        """Stop following the stream.  What a lingering feed held no client stream
        took: notifications are as if never read, requests are answered with an error
        now (``linger.py``), except, when ``replays``, those the backend will send again
        (a client stream resumes from before them: they came with an event id)."""
        if self.closed:
            return
        self.closed = True
        self.feeds.forget(self)
        lingering, self.lingering = self.lingering, None
        if lingering is not None:
            self.feeds.stops_lingering(self)
            self._report_dropped(lingering)
            held = lingering.end()
            if replays:
                held = [(message, event_id) for message, event_id in held if event_id is None]
            self._unreachable(
                held,
                "no client stream was open to take it before aigw closed the backend's "
                "stream (backends[].stream_linger)",
                "no_client_stream",
            )
        if self._reader is not None:
            self._reader.stop()
        elif self._opening is not None:
            # Its head has not come: the request is cancelled, which aborts its
            # connection now, so ``ended`` fires in this turn rather than after the
            # backend's ``timeout`` and a following feed need not wait ``CLOSE_WAIT``.
            self._opening.cancel()
        if self._sleep is not None:
            self._sleep.cancel()

    def ended(self) -> Deferred[None]:
        """Fires once the feed has ended: its upstream stream is closed on aigw's side
        (the connection aborted), or was never opened."""
        waiter: Deferred[None] = Deferred()
        if self._ended:
            waiter.callback(None)
        else:
            self._end_waiters.append(waiter)
        return waiter

    async def run(self, predecessor: Deferred[None] | None = None) -> None:
        """Follow the stream until the feed closes; first wait (at most ``CLOSE_WAIT``)
        for ``predecessor``, a closing feed's ``ended`` (``Feeds.subscribe``)."""
        try:
            if predecessor is not None:
                predecessor.addTimeout(CLOSE_WAIT, self.feeds.clock, onTimeoutCancel=_waited)
                await predecessor
                if not await self._paused(CLOSE_SETTLE):
                    return
            await self._follow()
        finally:
            self.close()
            self._ended = True
            waiters, self._end_waiters = self._end_waiters, []
            for waiter in waiters:
                if not waiter.called:  # one that timed out was cancelled
                    waiter.callback(None)

    async def _follow(self) -> None:
        """Keep the backend's stream open while anyone listens."""
        delay = BACKOFF_FIRST
        backend = self.backend
        while not self.closed:
            # Looked up each time: a reload may have replaced the backend's transport
            # (the stream follows the new one) or removed the backend (the feed ends).
            upstream = self.feeds.transports.get(self.name)
            if upstream is None:
                return
            opened_at = self.feeds.clock.seconds()
            try:
                if is_modern(backend.protocol_version):
                    self._refilter = False  # the filter is read now: it is current
                    uris = self.feeds.subscriptions.uris(self.key[1], self.name)
                    opening = upstream.listen(
                        jsonrpc.dumps(listen_request(next(_listen_ids), uris)),
                        lambda message: self._deliver(unlisten(message)),
                        backend.protocol_version,
                        routing_headers("subscriptions/listen", {}),
                        self._reading,
                        principal=self.principal,
                    )
                else:
                    opening = upstream.get_stream(
                        self._deliver,
                        backend.session_id,
                        backend.protocol_version,
                        self._resume_from(),
                        self._reading,
                        principal=self.principal,
                        on_event_id=self._moved,
                    )
                self._opening = ensureDeferred(opening)
                reply = await self._opening
                if reply.status == 405:
                    return  # this backend offers no stream
                if self.feeds.clock.seconds() - opened_at >= STABLE_SECONDS or _polled(
                    self._reader
                ):
                    delay = BACKOFF_FIRST
            except UpstreamSessionGone:
                self.log.info("backend {backend} ended its session stream", backend=self.name)
                return
            except UpstreamError as error:
                if self.closed:
                    return
                self.log.info(
                    "stream from {backend} lost ({error}); again in {delay}s",
                    backend=self.name,
                    error=str(error),
                    delay=delay,
                )
            except CancelledError:
                return  # closed before the stream's head came (``close``)
            finally:
                self._opening = None
                reader, self._reader = self._reader, None
                if reader is not None and reader.last_event_id is not None:
                    self.last_event_id = reader.last_event_id
                if reader is not None and reader.retry is not None:
                    self._retry = reader.retry
            if self.closed:
                return
            if self._refilter:
                continue
            if not await self._paused(self._wait(delay)):
                return
            delay = min(delay * 2, BACKOFF_MAX)

    def _wait(self, delay: float) -> float:
        """The back-off ``delay``, or the backend's ``retry`` when longer (2025-11-25
        basic/transports "Sending Messages to the Server": the client "MUST respect the
        retry field, waiting the given number of milliseconds before attempting to
        reconnect"), at most ``BACKOFF_MAX``: a backend's retry lengthens the wait, up
        to the longest back-off, and never shortens it below the back-off."""
        if self._retry is None:
            return delay
        return max(delay, min(self._retry / 1000, BACKOFF_MAX))

    async def _paused(self, seconds: float) -> bool:
        """Wait ``seconds``; False if the feed closed meanwhile (``close`` cuts it short)."""
        self._sleep = deferLater(self.feeds.clock, seconds, lambda: None)
        try:
            await self._sleep
        except CancelledError:
            return False
        finally:
            self._sleep = None
        return not self.closed

    def _reading(self, reader: Any) -> None:
        """An upstream stream began.  If the feed closed while it was opening, it is
        dropped at once: nothing would stop it later, and it would hold the upstream
        session's stream (servers allow one per session: 2025-11-25 basic/transports
        "Listening for Messages from the Server", "Multiple Connections") until the
        session ends, so the next listen of the same user would get 409 forever.  A
        lingering feed keeps it: its linger's end closes it."""
        if self.closed or self._refilter:
            reader.stop()
            return
        self._reader = reader
        if self._behind:
            reader.pause()

    def refilter(self) -> None:
        """The listen's filter changed (``resource_subscriptions.py``): send it again."""
        self._refilter = True
        if self._reader is not None:
            self._reader.stop()

    def _resume_from(self) -> str | None:
        """The ``Last-Event-ID`` the backend's stream is opened again with: its last
        event id when the merged id could carry it (``carried``), else none.  The
        backend's own id can be as long as one of its events (``max_message_bytes``)
        and goes back in one header line, which HTTP servers bound (a 431, RFC 6585
        section 5): resuming with it would have every reopening refused and the stream
        lost for good, where opening it anew loses only what the backend would have
        replayed, as a client resuming through another process would."""
        event_id = self.last_event_id
        if event_id is None or carried(event_id):
            return event_id
        if self.name not in self.feeds.unresumable:
            self.feeds.unresumable.add(self.name)
            self.log.warn(
                "backend {backend} named its stream's events with ids of {length} "
                "characters, too long to resume from (at most {most}): its stream is "
                "opened anew, without what the backend would have replayed",
                backend=self.name,
                length=len(event_id),
                most=MAX_BACKEND_EVENT_ID,
            )
        return None

    def _deliver(self, message: Any) -> None:
        if self.closed or message is None:
            return
        reader = self._reader
        if reader is not None and reader.last_event_id is not None:
            self.last_event_id = reader.last_event_id
        self._pass(message)

    def _moved(self, event_id: str) -> None:
        """The backend's stream moved to ``event_id`` without a message: its priming
        event (2025-11-25 basic/transports "Sending Messages to the Server", SEP-1699),
        or any other event of an id and empty data.  It goes where a message would, as
        None (``Held``): to each client stream (``SessionStream.receive``: its merged
        id then names it), or held by a lingering feed for the stream that takes it;
        and into ``recent``, so a stream resuming from it takes the lingering feed.
        Else a client reconnecting before the backend's first message would have the
        backend's stream opened fresh, and what the backend stored meanwhile lost."""
        if self.closed or event_id == self.last_event_id:
            return
        self.last_event_id = event_id
        self._pass(None)

    def _pass(self, message: Any) -> None:
        """A message (None: the stream's new event id alone) to the client streams, or
        held while the feed lingers."""
        if self.lingering is not None:
            if message is not None and self.feeds.pinged(self.backend, self.principal, message):
                # A ping is not held for the next client stream but answered now, as
                # promptly as basic/utilities/ping asks.
                return
            dropped = self.lingering.hold(message, self.last_event_id)
            if dropped:
                self.feeds.dropped += len(dropped)
                self._unreachable(
                    dropped,
                    f"dropped: more than {MAX_HELD} messages or {MAX_HELD_BYTES} bytes came "
                    "while no client stream was open (backends[].stream_linger)",
                    "stream_linger_full",
                )
            return
        if self.last_event_id is not None:
            self.recent.append((message, self.last_event_id))
        if isinstance(message, dict) and "id" in message:
            targets = self.subscribers[:1]
        else:
            targets = list(self.subscribers)
        for stream in targets:
            stream.receive(self.name, message, self.last_event_id)

    def _unreachable(self, held: list[Held], why: str, reason: str) -> None:
        """The backend's requests among ``held`` reached no client: each is answered."""
        for message, _ in held:
            if jsonrpc.is_request(message):
                self.feeds.unreachable(self.backend, self.principal, message, why, reason)

    def _report_dropped(self, lingering: Linger) -> None:
        if lingering.dropped:
            self.log.warn(
                "stream from {backend} lingered without a client stream: the {dropped} oldest "
                "of its messages dropped (more than {held} messages or {size} bytes arrived)",
                backend=self.name,
                dropped=lingering.dropped,
                held=MAX_HELD,
                size=MAX_HELD_BYTES,
            )


class Feeds:
    """The open upstream feeds, by FeedKey."""

    log = Logger()

    def __init__(
        self,
        transports: Mapping[str, UpstreamTransport],
        clock: Any,
        linger: Callable[[str], float],
        limits: StreamLimits,
        unreachable: Unreachable,
        pinged: Pinged,
    ) -> None:
        """``linger``: a backend's ``stream_linger``, read as each feed starts lingering
        (a reload changes it).  ``limits``: the bounds on client streams, which bound
        lingering feeds too (``lingers``).  ``unreachable``: answers a backend's request
        that a lingering feed held and no client stream took.  ``pinged``: answers a
        backend's ping on a lingering feed, which is never held."""
        self.transports = transports
        self.clock = clock
        self.linger = linger
        self.limits = limits
        self.unreachable = unreachable
        self.pinged = pinged
        self._feeds: dict[FeedKey, UpstreamFeed] = {}
        #: Closed feeds whose upstream stream may still be open, until they end or a
        #: new feed of the same key comes to wait for them (``subscribe``).
        self._closing: dict[FeedKey, UpstreamFeed] = {}
        #: The feeds lingering, oldest first.
        self._lingering: dict[FeedKey, UpstreamFeed] = {}
        #: The same feeds by client binding, for ``opened_elsewhere`` (a lookup per
        #: note, not a scan of every lingering feed), and by user, for the per-user
        #: bound (``lingers``): kept in step by ``lingers`` and ``stops_lingering``, the
        #: only ways in and out of ``_lingering``, so each holds what that holds, in its
        #: order, and no empty group (bounded as lingering feeds are: ``groups.py``).
        self._lingering_by_binding: Groups[str, FeedKey, UpstreamFeed] = Groups()
        self._lingering_by_user: Groups[UserKey, FeedKey, UpstreamFeed] = Groups()
        self.subscriptions = ResourceSubscriptions(self.refilter)
        #: Messages lingering feeds held and dropped for lack of room (``linger.py``):
        #: ``aigw_stream_linger_dropped_messages_total``.
        self.dropped = 0
        #: The backends told of once in the log as naming their events with ids too long
        #: to resume from (``UpstreamFeed._resume_from``): a warning per backend, not one
        #: per session.
        self.unresumable: set[str] = set()
        #: Tells every process that a client stream of the session with this
        #: ``session_digest`` started here (None: no ``sessions.redis_url``).
        self.tell_opened: Callable[[bytes], None] | None = None

    def refilter(self, binding: str, backend: str) -> None:
        """A session client's subscriptions on a 2026-07-28 backend changed: its listen
        (keyed without an upstream session id) is sent again with them, if open."""
        feed = self._feeds.get((backend, binding, ""))
        if feed is not None:
            feed.refilter()

    def __len__(self) -> int:
        return len(self._feeds)

    @staticmethod
    def key(session: ClientSession, backend: BackendSession) -> FeedKey:
        """Backend, client binding (per user for 2026-07-28 clients, per session for
        others) and upstream session id (none for a 2026-07-28 backend).  The binding
        is there although upstream session ids are the backend's own: a backend that
        gave two users one session id must not get one user's stream to the other."""
        return (backend.name, session.binding, backend.session_id or "")

    def subscribe(
        self, stream: SessionStream, backend: BackendSession, last_event_id: str | None
    ) -> UpstreamFeed:
        """The feed for this backend session, joined; opened if there is none.

        A lingering feed is taken when it can serve ``last_event_id``
        (``UpstreamFeed.resumes``).  When the stream resumes from further back, the
        backend replays from there (2025-11-25 basic/transports "Resumability and
        Redelivery": the client, here aigw, resumes with a GET carrying
        ``Last-Event-ID``).  But the backend allows one GET stream per session and
        answers another with 409 while it holds the first ("Listening for Messages from
        the Server"; the TypeScript SDK's resume checks it too): so the lingering feed
        is closed, and the new one opens its stream once the old one is closed on
        aigw's side (at most ``CLOSE_WAIT``) and ``CLOSE_SETTLE`` later, for the
        backend to see it go.  The same goes for any new feed whose predecessor is
        still closing (a linger that just expired).  A backend that answers 409 all
        the same gets the stream again after the back-off."""
        key = self.key(stream.session, backend)
        feed = self._feeds.get(key)
        again = feed.resumes(last_event_id) if feed is not None else []
        if feed is not None and again is None:
            # What was held is the backend's to send again, from where the stream resumes.
            feed.close(replays=True)
            feed = None
        if feed is None:
            closing = self._closing.pop(key, None)
            feed = UpstreamFeed(self, key, backend, last_event_id, stream.session.principal)
            self._feeds[key] = feed
            feed.add(stream)
            predecessor = closing.ended() if closing is not None else None
            ensureDeferred(feed.run(predecessor)).addErrback(
                lambda f: self.log.failure("following {key}", f, key=key)
            )
        else:
            feed.add(stream, again or ())
        return feed

    def forget(self, feed: UpstreamFeed) -> None:
        """``feed`` closed: no client stream gets it, and until its run ends, a new feed
        of its key waits for it (``subscribe``)."""
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]
        self._closing[feed.key] = feed
        feed.ended().addCallback(lambda _: self._closed_down(feed))

    def _closed_down(self, feed: UpstreamFeed) -> None:
        if self._closing.get(feed.key) is feed:
            del self._closing[feed.key]

    def lingers(self, feed: UpstreamFeed) -> None:
        """``feed`` starts lingering.  A lingering feed holds an upstream socket that no
        client stream's slot pays for, so they are bounded like client streams: at
        most ``sessions.max_streams_per_user`` of one user's and ``server.max_streams``
        in the process; past either, the oldest (least likely to be taken) closes: the
        one that started lingering first, of the user's (found in ``_lingering_by_user``,
        not by a scan of every lingering feed as each starts) or of all."""
        user = feed.principal.user
        mine = self._lingering_by_user.of(user)
        if mine and len(mine) >= self.limits.max_per_user:
            next(iter(mine.values())).close()
        if len(self._lingering) >= self.limits.max_streams:
            next(iter(self._lingering.values())).close()
        self._lingering[feed.key] = feed
        self._lingering_by_binding.add(feed.key[1], feed.key, feed)
        self._lingering_by_user.add(user, feed.key, feed)

    def stops_lingering(self, feed: UpstreamFeed) -> None:
        """``feed`` stops lingering, however: taken by a client stream, or closed (its
        linger's end, a bound, a stream resuming from before, ``opened_elsewhere``, its
        upstream stream's own end, shutdown)."""
        if self._lingering.get(feed.key) is not feed:
            return
        del self._lingering[feed.key]
        self._lingering_by_binding.discard(feed.key[1], feed.key)
        self._lingering_by_user.discard(feed.principal.user, feed.key)

    def opened(self, session: ClientSession) -> None:
        """A client stream of ``session`` took its feeds here: the others hear of it
        (``tell_opened``).  A 2026-07-28 client's listens have no session: their feeds
        are the user's, keyed by upstream sessions of this process's own pool."""
        if self.tell_opened is not None and session.session_id:
            self.tell_opened(session_digest(session.session_id))

    def opened_elsewhere(self, digest: bytes) -> int:
        """A client stream of the session with SHA-256 ``digest`` started in another
        process.  Each feed of the session lingering here (found by its binding, as
        every process hears every note) ends now, as at its linger's end (its held
        requests answered: ``UpstreamFeed.close``): no client stream will come back
        here for it, and the backend answers the other process's stream 409 while it
        is open.  A feed with a client stream is not lingering and is left alone.
        How many ended."""
        ended = list(self._lingering_by_binding.of(session_binding(digest)).values())
        for feed in ended:
            held = len(feed.lingering.held) if feed.lingering is not None else 0
            self.log.info(
                "stream from {backend} ended before its linger: the session's client stream "
                "reopened in another process ({held} held messages not delivered)",
                backend=feed.name,
                held=held,
            )
            feed.close()
        return len(ended)

    def close(self) -> None:
        """Close every feed (shutdown, after the client streams: lingering ones remain)."""
        for feed in list(self._feeds.values()):
            feed.close()


def _waited(result: object, timeout: float) -> None:
    """A wait for a closing feed that timed out (``UpstreamFeed.run``): go on all the same."""


class SessionStream:
    """One client's GET stream, fed by each backend of its session."""

    log = Logger()

    def __init__(
        self,
        feeds: Feeds,
        to_client: ToClient,
        session: ClientSession,
        write: Callable[[bytes], None],
        event_ids: EventIdCodec,
        resumes: Mapping[str, str],
        retry: Callable[[], int] | None = None,
    ) -> None:
        """``event_ids`` seals the merged id each event carries; ``resumes``: each
        backend's id the client's ``Last-Event-ID`` named, opened (``Gateway.resumes``).
        ``retry``: the SSE ``retry`` in milliseconds, read as it is sent (``mark``)."""
        self.feeds = feeds
        self.event_ids = event_ids
        self.to_client = to_client
        self.session = session
        self.write = write
        self.retry = retry
        self.closed = False
        #: The client is behind (paused by its valve): a probe does not write.
        self.behind = False
        self.on_close: Callable[[], None] | None = None
        self.last_ids = dict(resumes)
        self._feeds: list[UpstreamFeed] = []

    def mark(self) -> bytes:
        """An event without a message that says where the stream is: its id (every
        backend's last event id so far, what ``_emit`` would write) and the ``retry``.

        Written first, before ``start`` delivers anything (2025-11-25 basic/transports
        "Sending Messages to the Server": a server starting an SSE stream SHOULD at once
        send an event of an id and empty data, to prime the client to reconnect with that
        id as ``Last-Event-ID``): a stream lost before its first message is resumed from
        where it began, in any process, as the id is no process's own.  Written last when
        aigw ends the stream ("Listening for Messages from the Server": a server closing
        the connection without terminating the stream SHOULD send ``retry``; the client
        MUST wait that long before reconnecting).  The MCP SDK clients keep its id and
        skip it: an event with empty data carries no message."""
        retry = self.retry() if self.retry is not None else None
        return format_event(b"", event_id=self.merged_id(), retry=retry)

    def start(self) -> None:
        for name, backend in self.session.backends.items():
            if self.closed:
                return
            if backend.session_id is not None or is_modern(backend.protocol_version):
                feed = self.feeds.subscribe(self, backend, self.last_ids.get(name))
                self._feeds.append(feed)
        if self._feeds and not self.closed:
            self.feeds.opened(self.session)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        feeds, self._feeds = self._feeds, []
        for feed in feeds:
            feed.remove(self)
        if self.on_close is not None:
            self.on_close()

    def pause(self) -> None:
        """The client is behind (its socket's buffer is full): the feeds stop reading."""
        self.behind = True
        for feed in self._feeds:
            feed.behind(self)

    def resume(self) -> None:
        self.behind = False
        for feed in self._feeds:
            feed.caught_up(self)

    def lists_changed(self) -> None:
        """A reload may have changed what this client sees: ``list_changed`` for each
        list its session offers (basic/utilities: the client lists again)."""
        if self.closed:
            return
        offered = union_capabilities(self.session.backends.values())
        for kind in LIST_KINDS:
            if kind in offered:
                self._emit(jsonrpc.notification(f"notifications/{kind}/list_changed"))

    def send(self, message: dict[str, Any]) -> None:
        """A message of aigw's own to this client (not a backend's)."""
        if not self.closed:
            self._emit(message)

    def receive(self, name: str, message: Any, event_id: str | None) -> None:
        """A message of one backend's feed; None: its stream moved to ``event_id``
        without one (``UpstreamFeed._moved``).  Then the client gets an event of the new
        merged id and empty data, as ``mark`` writes, and keeps its id: the MCP SDK
        clients do (the TypeScript SDK's ``StreamableHTTPClientTransport`` takes
        ``event.id`` before it skips an event without data; the Python SDK's
        ``handle_get_stream`` takes ``sse.id`` of every event), provided the event has
        its ``data`` line, which ``format_event`` always writes (the TypeScript SDK's
        parser, eventsource-parser, dispatches no event without one, id and all)."""
        if self.closed:
            return
        if message is None:
            if event_id is not None and self.last_ids.get(name) != event_id:
                self.last_ids[name] = event_id
                self.write(format_event(b"", event_id=self.merged_id()))
            return
        if event_id is not None:
            self.last_ids[name] = event_id
        self.to_client(self.session, name, message, self._emit)

    def merged_id(self) -> str:
        """The id of the event written now: every backend's last event id, sealed for
        this session (``EventIdCodec.encode``)."""
        return self.event_ids.encode(self.last_ids, self.session.binding)

    def _emit(self, message: dict[str, Any]) -> None:
        event_id = self.merged_id() if self.last_ids else None
        self.write(format_event(jsonrpc.dumps(message), event_id=event_id))
