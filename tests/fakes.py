"""In-memory stand-ins for aigw's seams, shared by the unit tests.

One fake per seam: ``FakeTransport`` (``UpstreamTransport``), ``FakeCredentials``
(``UpstreamCredentials``), ``FakePolicy`` (``AccessPolicy``) and
``RecordingObserver`` (``GatewayObserver``).  Each records what it was asked, so a
test can check what crossed the seam; none touches the network or the clock.
tests/unit/test_fakes.py checks each against its Protocol.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

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
from aigw.upstream.api import (
    BodyReader,
    HeaderFields,
    MessageSink,
    Reply,
    UpstreamCredentials,
    UpstreamError,
)

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

    async def headers(self, principal: Principal | None) -> HeaderFields:
        self.principals.append(principal)
        if self.error is not None:
            raise self.error
        return self.fields


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

    def __init__(self) -> None:
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
        return self._play(message, sink, on_reader)

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
        return self._play(message, sink, on_reader)

    async def get_stream(
        self,
        sink: MessageSink,
        session_id: str | None,
        protocol_version: str | None,
        last_event_id: str | None,
        on_reader: Callable[[BodyReader], None],
        principal: Principal | None = None,
    ) -> Reply:
        resume = {b"Last-Event-ID": last_event_id.encode()} if last_event_id else None
        await self._record("get_stream", None, session_id, protocol_version, resume, principal)
        return self._deliver(self.stream, None, sink, on_reader)

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
        self, message: Any, sink: MessageSink, on_reader: Callable[[BodyReader], None] | None
    ) -> Reply:
        """The reply to one message or to each message of a batch."""
        reply = ACCEPTED
        for one in message if isinstance(message, list) else [message]:
            scripted = self._next(one)
            if scripted is not None:
                reply = self._deliver(scripted, one.get("id"), sink, on_reader)
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
    ) -> Reply:
        if scripted.error is not None:
            raise scripted.error
        if on_reader is not None:
            reader = RecordingReader()
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
