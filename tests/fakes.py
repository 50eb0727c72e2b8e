"""In-memory stand-ins for aigw's seams, shared by the unit tests.

One fake per seam: ``FakeTransport`` (``UpstreamTransport``), ``FakeCredentials``
(``UpstreamCredentials``), ``FakePolicy`` (``AccessPolicy``),
``RecordingObserver`` (``GatewayObserver``) and ``MemoryStore`` (``Store``).  Each
records what it was asked, so a test can check what crossed the seam; none touches the
network or the clock.
tests/unit/test_fakes.py checks each against its Protocol.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.web.http_headers import Headers

from aigw.events import (
    AccessDecided,
    AuthenticationRefused,
    AuthServerFetched,
    RequestFinished,
    ToolFlagged,
    UpstreamConnection,
)
from aigw.gateway.access import Decision, Kind
from aigw.principal import Principal
from aigw.store import pins
from aigw.store.api import RegisteredClient, ToolPin, UserToken, UserTokenInfo
from aigw.upstream.api import (
    BodyReader,
    HeaderFields,
    MessageSink,
    Reply,
    UpstreamCredentials,
    UpstreamError,
)


@attrs.define
class ScriptedResponse:
    code: int
    body: bytes
    headers: Headers = attrs.field(factory=Headers)

    @property
    def length(self) -> int:
        return len(self.body)


@attrs.define
class ScriptedRequest:
    method: str
    url: str
    kwargs: dict[str, Any]
    answer: Deferred[Any]

    @property
    def form(self) -> dict[str, str]:
        return dict(self.kwargs["data"])

    @property
    def json(self) -> Any:
        return json.loads(self.kwargs["data"])

    @property
    def authorization(self) -> str | None:
        values = self.kwargs["headers"].get("Authorization")
        return values[0].decode() if values else None


class ScriptedHTTP:
    """An ``HTTPClient`` (``aigw.httpjson``) whose requests wait until the test answers
    them, or are answered at once by ``auto`` (status, body[, response headers])."""

    def __init__(self) -> None:
        self.requests: list[ScriptedRequest] = []
        self.auto: Callable[[ScriptedRequest], tuple[Any, ...]] | None = None

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        request = ScriptedRequest(method, url, kwargs, Deferred())
        self.requests.append(request)
        if self.auto is not None:
            self.answer(request, *self.auto(request))
        return request.answer

    def collect(self, response: Any, collector: Any) -> Deferred[None]:
        collector(response.body)
        return succeed(None)

    def answer(
        self,
        request: ScriptedRequest,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        fields = Headers({k: [v] for k, v in (headers or {}).items()})
        request.answer.callback(ScriptedResponse(status, raw, fields))

    def token(self, request: ScriptedRequest, value: str, expires_in: float | None = 3600) -> None:
        body: dict[str, Any] = {"access_token": value, "token_type": "Bearer"}
        if expires_in is not None:
            body["expires_in"] = expires_in
        self.answer(request, 200, body)


JSON_REPLY = Reply(status=200, session_id=None, content_type="application/json")
#: What a backend answers a notification or a response it was sent (MCP basic/transports).
ACCEPTED = Reply(status=202, session_id=None, content_type="")
#: A backend without a server-to-client stream answers its GET with 405.
NO_STREAM = Reply(status=405, session_id=None, content_type="")


class FakeCredentials:
    """Hands out ``fields`` (or raises ``error``) and records each principal asked for."""

    def __init__(self, fields: HeaderFields = (), error: UpstreamError | None = None) -> None:
        self.fields = tuple(fields)
        self.error = error
        self.principals: list[Principal | None] = []
        #: The principals whose credentials a backend answered 401 to.
        self.refusals: list[Principal | None] = []

    async def headers(self, principal: Principal | None) -> HeaderFields:
        self.principals.append(principal)
        if self.error is not None:
            raise self.error
        return self.fields

    async def refused(self, principal: Principal | None) -> None:
        self.refusals.append(principal)


@attrs.frozen
class Scripted:
    """One scripted reply: ``messages`` go to the sink (a response without ``id`` gets
    the request's), then ``reply`` is returned; or ``error`` is raised instead."""

    messages: tuple[Any, ...] = ()
    reply: Reply = JSON_REPLY
    error: UpstreamError | None = None


@attrs.frozen
class SentRequest:
    """What one call on a ``FakeTransport`` carried."""

    kind: Literal["post", "listen", "get_stream", "delete"]
    #: The decoded JSON-RPC message (None for GET and DELETE).
    message: Any
    session_id: str | None
    protocol_version: str | None
    extra_headers: Mapping[bytes, bytes] | None
    principal: Principal | None
    #: The header fields the transport's credentials gave for this request.
    credentials: HeaderFields


class RecordingReader:
    """The ``BodyReader`` a ``FakeTransport`` hands to ``on_reader``."""

    #: What an SSE reader read of its stream's ``id`` and ``retry`` (``UpstreamFeed``).
    last_event_id: str | None = None
    retry: int | None = None

    def __init__(self, session_id: str | None = None) -> None:
        #: The session the scripted reply's head names (``Reply.session_id``).
        self.session_id = session_id
        self.stopped = False
        self.finished = False
        self.paused = False

    def stop(self) -> None:
        self.stopped = True

    def finish(self) -> None:
        self.finished = True

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False


class FakeTransport:
    """A backend in memory: replies scripted per JSON-RPC method, every request recorded.

    A method's scripted replies are used in turn and the last one stays, so one
    ``answer("tools/list", ...)`` answers every listing.  An unscripted request is
    answered like a real server would: JSON-RPC error -32601; a notification with 202.
    """

    def __init__(self, name: str = "files", credentials: UpstreamCredentials | None = None) -> None:
        self.name = name
        self.credentials: UpstreamCredentials = credentials or FakeCredentials()
        self.scripts: dict[str, list[Scripted]] = {}
        #: What a GET of the server-to-client stream gets (default: no stream).
        self.stream = Scripted(reply=NO_STREAM)
        self.delete_status = 200
        self.requests: list[SentRequest] = []
        self.readers: list[RecordingReader] = []
        self.closed = False

    def script(self, method: str, *replies: Scripted) -> None:
        self.scripts.setdefault(method, []).extend(replies)

    def answer(self, method: str, result: Any, session_id: str | None = None) -> None:
        """Answer ``method`` with a JSON result."""
        reply = attrs.evolve(JSON_REPLY, session_id=session_id)
        self.script(method, Scripted(({"jsonrpc": "2.0", "result": result},), reply))

    def fail(self, method: str, kind: str = "unavailable", detail: str = "scripted") -> None:
        """Fail ``method`` as a backend that cannot answer."""
        self.script(method, Scripted(error=UpstreamError(self.name, kind, detail)))

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
        message = json.loads(body)
        await self._record("post", message, session_id, protocol_version, extra_headers, principal)
        return self._play(message, sink, on_reader, session_id)

    async def respond(
        self,
        body: bytes,
        session_id: str | None,
        protocol_version: str | None,
        principal: Principal | None = None,
    ) -> None:
        """Recorded as a ``post`` (what it is on the wire), never scripted."""
        message = json.loads(body)
        await self._record("post", message, session_id, protocol_version, None, principal)

    async def listen(
        self,
        body: bytes,
        sink: MessageSink,
        protocol_version: str,
        extra_headers: dict[bytes, bytes],
        on_reader: Callable[[BodyReader], None],
        principal: Principal | None = None,
    ) -> Reply:
        message = json.loads(body)
        await self._record("listen", message, None, protocol_version, extra_headers, principal)
        return self._play(message, sink, on_reader, None)

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
        """The scripted stream: messages without event ids (``on_event_id`` never
        called; ``fake_upstream.FakeUpstream`` sends ids over HTTP)."""
        resume = {b"Last-Event-ID": last_event_id.encode()} if last_event_id else None
        await self._record("get_stream", None, session_id, protocol_version, resume, principal)
        return self._deliver(self.stream, None, sink, on_reader, session_id)

    async def delete(
        self, session_id: str, protocol_version: str | None, principal: Principal | None = None
    ) -> int:
        await self._record("delete", None, session_id, protocol_version, None, principal)
        return self.delete_status

    async def close(self) -> None:
        self.closed = True

    async def _record(
        self,
        kind: Literal["post", "listen", "get_stream", "delete"],
        message: Any,
        session_id: str | None,
        protocol_version: str | None,
        extra_headers: Mapping[bytes, bytes] | None,
        principal: Principal | None,
    ) -> None:
        """Ask the credentials first, as ``client.Upstream`` does: their error fails the request."""
        fields = await self.credentials.headers(principal)
        self.requests.append(
            SentRequest(
                kind, message, session_id, protocol_version, extra_headers, principal, fields
            )
        )

    def _play(
        self,
        message: Any,
        sink: MessageSink,
        on_reader: Callable[[BodyReader], None] | None,
        session_id: str | None,
    ) -> Reply:
        """The reply to one message or to each message of a batch."""
        reply = ACCEPTED
        for one in message if isinstance(message, list) else [message]:
            scripted = self._next(one)
            if scripted is not None:
                reply = self._deliver(scripted, one.get("id"), sink, on_reader, session_id)
        return reply

    def _next(self, message: Mapping[str, Any]) -> Scripted | None:
        method = message.get("method")
        if method is None or "id" not in message:
            return None  # a response or a notification: 202, nothing to say
        queue = self.scripts.get(method)
        if not queue:
            error = {"code": -32601, "message": f"Method not found: {method}"}
            return Scripted(({"jsonrpc": "2.0", "error": error},))
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def _deliver(
        self,
        scripted: Scripted,
        request_id: Any,
        sink: MessageSink,
        on_reader: Callable[[BodyReader], None] | None,
        session_id: str | None,
    ) -> Reply:
        """``session_id``: the request's, which the reader names unless the scripted
        reply assigns one (as ``client.Upstream`` reads the head)."""
        if scripted.error is not None:
            raise scripted.error
        if on_reader is not None:
            reader = RecordingReader(scripted.reply.session_id or session_id)
            self.readers.append(reader)
            on_reader(reader)
        for message in scripted.messages:
            if request_id is not None and _is_response(message) and "id" not in message:
                message = {**message, "id": request_id}
            sink(message)
        return scripted.reply


def _is_response(message: Any) -> bool:
    return isinstance(message, dict) and ("result" in message or "error" in message)


class FakePolicy:
    """Allows or denies from a table keyed ``(backend, name)``; ``(backend, None)`` covers
    a whole backend; anything else gets ``default``.  The rule names the entry used.
    ``asked`` records each question, with its kind and method."""

    def __init__(
        self, table: Mapping[tuple[str, str | None], bool] | None = None, default: bool = True
    ) -> None:
        self.table = dict(table or {})
        self.default = default
        self.asked: list[tuple[Principal, str, str | None, Kind, str | None]] = []

    def decide(
        self,
        principal: Principal,
        backend: str,
        name: str | None = None,
        *,
        kind: Kind = "tool",
        method: str | None = None,
    ) -> Decision:
        self.asked.append((principal, backend, name, kind, method))
        for key in ((backend, name), (backend, None)):
            if key in self.table:
                return Decision(self.table[key], f"table[{key[0]}, {key[1]}]")
        return Decision(self.default, "default")


class RecordingObserver:
    """Every gateway event received, one list per kind, in order."""

    def __init__(self) -> None:
        self.requests: list[RequestFinished] = []
        self.decisions: list[AccessDecided] = []
        self.refusals: list[AuthenticationRefused] = []
        self.connections: list[UpstreamConnection] = []
        self.fetches: list[AuthServerFetched] = []
        self.flagged: list[ToolFlagged] = []

    def request_finished(self, event: RequestFinished) -> None:
        self.requests.append(event)

    def access_decided(self, event: AccessDecided) -> None:
        self.decisions.append(event)

    def authentication_refused(self, event: AuthenticationRefused) -> None:
        self.refusals.append(event)

    def upstream_connection(self, event: UpstreamConnection) -> None:
        self.connections.append(event)

    def auth_server_fetched(self, event: AuthServerFetched) -> None:
        self.fetches.append(event)

    def tool_flagged(self, event: ToolFlagged) -> None:
        self.flagged.append(event)


def protocol_members(protocol: type) -> dict[str, Any]:
    """The members a Protocol declares: its methods, and its attributes (as None)."""
    members: dict[str, Any] = dict.fromkeys(inspect.get_annotations(protocol))
    for name, value in vars(protocol).items():
        if not name.startswith("_") and inspect.isfunction(value):
            members[name] = value
    return members


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name != "self"]


class MemoryStore:
    """``store.api.Store`` in dicts: the rows as put, nothing sealed; records nothing else.

    ``fail``, when set, is raised by every method (a store that is down)."""

    def __init__(self) -> None:
        self.tokens: dict[tuple[str, str, str], UserToken] = {}
        self.clients: dict[tuple[str, str], RegisteredClient] = {}
        self.pins: dict[tuple[str, str, str], ToolPin] = {}
        self.fail: Exception | None = None
        self.closed = False

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    async def get_user_token(self, issuer: str, subject: str, backend: str) -> UserToken | None:
        self._check()
        return self.tokens.get((issuer, subject, backend))

    async def put_user_token(self, token: UserToken) -> None:
        self._check()
        self.tokens[(token.issuer, token.subject, token.backend)] = token

    async def list_user_tokens(self) -> Sequence[UserTokenInfo]:
        self._check()
        return [
            UserTokenInfo(
                t.issuer,
                t.subject,
                t.backend,
                t.expires_at,
                t.scope,
                t.refresh_token is not None,
                t.updated_at,
            )
            for t in self.tokens.values()
        ]

    async def revoke_user_tokens(
        self, *, subject: str | None = None, backend: str | None = None, issuer: str | None = None
    ) -> int:
        """Delete every token matching all the given keys (at least one); how many went."""
        self._check()
        if subject is None and backend is None and issuer is None:
            raise ValueError("give at least one of subject, backend, issuer")
        wanted = (issuer, subject, backend)
        gone = [
            key
            for key in self.tokens
            if all(want is None or want == have for want, have in zip(wanted, key, strict=True))
        ]
        for key in gone:
            del self.tokens[key]
        return len(gone)

    async def get_client(self, backend: str, issuer: str) -> RegisteredClient | None:
        self._check()
        return self.clients.get((backend, issuer))

    async def put_client(self, client: RegisteredClient) -> None:
        self._check()
        self.clients[(client.backend, client.issuer)] = client

    async def get_pins(self, backend: str) -> Sequence[ToolPin]:
        self._check()
        return [pin for (name, _, _), pin in self.pins.items() if name == backend]

    async def put_pin(self, pin: ToolPin) -> None:
        self._check()
        self.pins[(pin.backend, pin.kind, pin.name)] = pin

    async def list_pending_pins(self) -> Sequence[ToolPin]:
        self._check()
        return [pin for pin in self.pins.values() if pin.pending_digest is not None]

    async def record_pin(
        self, backend: str, kind: str, name: str, digest: str, definition: str, now: float
    ) -> ToolPin:
        """What a backend listed now, applied to the stored pin (``pins.observed``) in one
        transaction; the pin as it then is."""
        self._check()
        key = (backend, kind, name)
        after = pins.observed(self.pins.get(key), backend, kind, name, digest, definition, now)
        self.pins[key] = after
        return after

    async def accept_pin(self, backend: str, kind: str, name: str) -> ToolPin | None:
        """Make the pending digest the pinned one (``pins.accepted``); the pin as it then
        is, or None when nothing was pending."""
        self._check()
        pin = self.pins.get((backend, kind, name))
        after = None if pin is None else pins.accepted(pin)
        if after is not None:
            self.pins[(backend, kind, name)] = after
        return after

    async def close(self) -> None:
        self.closed = True
