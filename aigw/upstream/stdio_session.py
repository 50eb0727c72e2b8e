"""One child process of a stdio backend and its one MCP session (MCP basic/transports "stdio").

Started on use, restarted after a back-off when it dies, stopped for good by ``stop``.
Messages to it are written one per line; messages from it are demultiplexed: an answer
to the call with its id, a ping answered here (``protocol/ping.py``), progress to the
call with its token, a server request to the only call in flight, anything else to the
open streams.  ``stdio.py`` says how this maps onto the transport contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater
from twisted.logger import Logger

from aigw.config import BackendConfig
from aigw.events import ConnectionState, GatewayObserver, UpstreamConnection
from aigw.protocol import jsonrpc
from aigw.protocol.ping import pong
from aigw.protocol.refusals import refusal
from aigw.upstream.api import BodyReader, MessageSink, Reply, UpstreamError, UpstreamSessionGone
from aigw.upstream.stdio_process import ChildProcess

#: Requests in flight to one process.
MAX_PENDING = 256
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
#: A process that ran this long before dying is restarted after the first back-off.
STABLE_SECONDS = 10.0

_JSON = "application/json"


def _field(message: dict[str, Any], outer: str, inner: str) -> Any:
    """``message[outer][inner]``, or None when either is missing or not an object."""
    value = message.get(outer)
    return value.get(inner) if isinstance(value, dict) else None


class Call:
    """One request in flight: its sink, and the reader the gateway may stop or finish."""

    def __init__(self, owner: StdioSession, request_id: int, sink: MessageSink) -> None:
        self.owner = owner
        self.request_id = request_id
        self.sink = sink
        self.done: Deferred[None] = Deferred()
        self.progress_token: object = None
        self.timer: IDelayedCall | None = None

    @property
    def session_id(self) -> str | None:
        """The child's session (a ping on it never leaves this module: ``_received``)."""
        return self.owner.session_id

    def deliver(self, message: Any) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.reset(self.owner.config.timeout)
        self.sink(message)

    def stop(self) -> None:
        """The gateway gave up (cancellation): the answer, if it comes, is dropped."""
        self.owner.end_call(self, UpstreamError(self.owner.name, "unavailable", "stopped"))

    def finish(self) -> None:
        self.owner.end_call(self)

    # Flow control is not passed on to a child: its stdout carries every call and
    # stream of the process (other users' too, when shared), so pausing it for one
    # slow client would stall them all.  Each line it sends is bounded (stdio_process).
    def pause(self) -> None:
        """Not passed on (see above)."""

    def resume(self) -> None:
        """Not passed on (see above)."""


class Stream:
    """A ``get_stream`` being read: server messages that belong to no call."""

    last_event_id: str | None = None
    #: A child's stream has no SSE ``retry`` (``UpstreamFeed`` reads the HTTP reader's).
    retry: int | None = None

    def __init__(self, owner: StdioSession, sink: MessageSink) -> None:
        self.owner = owner
        self.sink = sink
        self.done: Deferred[None] = Deferred()

    @property
    def session_id(self) -> str | None:
        """The child's session, as ``Call.session_id``."""
        return self.owner.session_id

    def stop(self) -> None:
        self.finish()

    def pause(self) -> None:
        """Not passed on to the child (see ``Call.pause``)."""

    def resume(self) -> None:
        """Not passed on to the child (see ``Call.pause``)."""

    def forget(self) -> None:
        if self in self.owner.streams:
            self.owner.streams.remove(self)

    def finish(self) -> None:
        self.forget()
        if not self.done.called:
            self.done.callback(None)


class StdioSession:
    """One child process slot: started on use, restarted with back-off, one session each."""

    log = Logger()

    def __init__(
        self,
        config: BackendConfig,
        clock: Any,
        environment: Mapping[str, str],
        new_session_id: Callable[[], str],
        observer: GatewayObserver | None = None,
    ) -> None:
        self.config = config
        self.observer = observer
        self.name = config.name
        self.clock = clock
        self.environment = environment
        self.new_session_id = new_session_id
        self.child: ChildProcess | None = None
        self.session_id: str | None = None
        self.initialized: dict[str, Any] | None = None  # the initialize result of this child
        self.announced = False  # notifications/initialized sent to this child
        self.calls: dict[int, Call] = {}
        self.streams: list[Stream] = []
        self.closed = False
        self._delay = 0.0
        self._not_before = 0.0
        self._started_at = 0.0
        self._initializing = DeferredLock()

    @property
    def busy(self) -> bool:
        return bool(self.calls or self.streams)

    async def running(self) -> ChildProcess:
        """The child, started if it is not running (after the back-off, within the timeout)."""
        while True:
            if self.closed:
                raise UpstreamError(self.name, "unavailable", "stopped")
            if self.child is not None:
                return self.child
            wait = self._not_before - self.clock.seconds()
            if wait <= 0:
                return self._spawn()
            if wait > self.config.timeout:
                raise UpstreamError(self.name, "unavailable", f"restarting in {wait:.1f}s")
            await deferLater(self.clock, wait, lambda: None)

    def _spawn(self) -> ChildProcess:
        config = self.config
        assert config.command is not None
        child = ChildProcess(self.name, self._received, self.clock, self.config.max_message_bytes)
        self._started_at = self.clock.seconds()
        try:
            self.clock.spawnProcess(
                child,
                config.command,
                [config.command, *config.args],
                env=self.environment,
                path=config.cwd,
            )
        except OSError as error:
            self._back_off()
            self._report("failed", str(error))
            raise UpstreamError(self.name, "unavailable", f"cannot start: {error}") from None
        self.child = child
        self.session_id = self.new_session_id()
        self._report("opened")
        child.ended.addCallback(self._ended, child)
        return child

    def _back_off(self) -> None:
        """The next start waits: twice as long as the last time if the child died young."""
        young = self.clock.seconds() - self._started_at < STABLE_SECONDS
        self._delay = min(self._delay * 2, BACKOFF_MAX) if young and self._delay else BACKOFF_FIRST
        self._not_before = self.clock.seconds() + self._delay

    def _report(self, state: ConnectionState, detail: str = "") -> None:
        """A child is to metrics what a connection is (``UpstreamConnection``)."""
        if self.observer is not None:
            self.observer.upstream_connection(UpstreamConnection(self.name, state, detail))

    def _ended(self, how: str, child: ChildProcess) -> None:
        if child is not self.child:
            return
        self.child, self.session_id, self.initialized, self.announced = None, None, None, False
        self._back_off()
        if not self.closed and child.problem is None:  # else aigw ended it: not "lost"
            self._report("lost", how)
        if not self.closed:
            self.log.warn(
                "backend {backend}: process {pid} {how}; started again on next use, "
                "not before {delay}s",
                backend=self.name,
                pid=child.pid,
                how=how,
                delay=self._delay,
            )
        error = UpstreamError(self.name, "unavailable", f"the process {how}")
        for call in list(self.calls.values()):
            self.end_call(call, error)
        for stream in list(self.streams):
            self.streams.remove(stream)
            stream.done.errback(error)

    def _received(self, message: Any) -> None:
        """Route one message from the child (see the module docstring)."""
        if isinstance(message, list):
            for item in message:
                self._received(item)
            return
        if not isinstance(message, dict):
            return
        request_id = message.get("id")
        call = None
        if "method" not in message:
            call = self.calls.get(request_id) if type(request_id) is int else None
            if call is None:
                self.log.debug("backend {backend}: a late answer dropped", backend=self.name)
                return
            call.deliver(message)
            self.end_call(call)
            return
        answer = pong(message)
        if answer is not None:
            # The child's peer is aigw: answered on its stdin, during a call or not.
            if self.child is not None:
                self.child.send(jsonrpc.dumps(answer))
            return
        if message["method"] == "notifications/progress":
            # Clients choose their progress tokens, so two users' calls to a shared
            # process may carry the same one: progress goes to a call only when exactly
            # one call has the token, never to a guess.
            token = _field(message, "params", "progressToken")
            owners = [
                c for c in self.calls.values() if token is not None and c.progress_token == token
            ]
            if len(owners) == 1:
                owners[0].deliver(message)
            return
        if "id" in message and len(self.calls) == 1:
            call = next(iter(self.calls.values()))
        if call is not None:
            call.deliver(message)
            return
        if "id" in message and self.config.stdio.scope == "shared":
            # A server request (sampling, elicitation, roots) that belongs to no single
            # call: in a process shared by every user, any open stream may be another
            # user's, so it is refused to the child rather than sent to a guess.
            self._refuse(message)
            return
        targets = self.streams[:1] if "id" in message else list(self.streams)
        for stream in targets:
            stream.sink(message)
        if not targets:
            self.log.debug(
                "backend {backend}: no stream to hear {method}",
                backend=self.name,
                method=message.get("method"),
            )

    def _refuse(self, message: dict[str, Any]) -> None:
        """Answer the child's request for the client no single call names, as every
        request no client can take is answered (``protocol/refusals.py``:
        ``no_single_call``), so that the child does not wait for its own timeout."""
        method = message.get("method")
        self.log.info(
            "backend {backend}: {method} from a shared process belongs to no single call; refused",
            backend=self.name,
            method=method,
        )
        if self.child is not None:
            why = (
                "aigw cannot tell which client this request is for (stdio.scope: shared); "
                "send it while exactly one call is in flight, or use stdio.scope: user"
            )
            answer = refusal(message["id"], method, why, "no_single_call")
            self.child.send(jsonrpc.dumps(jsonrpc.to_dict(answer)))

    def end_call(self, call: Call, error: UpstreamError | None = None) -> None:
        self._forget(call)
        if call.done.called:
            return
        if error is None:
            call.done.callback(None)
        else:
            call.done.errback(error)

    def _forget(self, call: Call) -> None:
        if self.calls.get(call.request_id) is call:
            del self.calls[call.request_id]
        if call.timer is not None and call.timer.active():
            call.timer.cancel()

    async def post(
        self,
        message: Any,
        line: bytes,
        sink: MessageSink,
        session_id: str | None,
        on_reader: Callable[[BodyReader], None] | None,
    ) -> Reply:
        method = message.get("method") if isinstance(message, dict) else None
        if session_id is None:
            if method != "initialize":
                raise UpstreamError(self.name, "refused", "no session: initialize first")
            return await self._initialize(message, line, sink)
        if session_id != self.session_id or self.child is None:
            raise UpstreamSessionGone(self.name, "session_gone", "the process was restarted")
        if method == "notifications/initialized":
            if not self.announced:
                self.announced = True
                self.child.send(line)
            return Reply(202, session_id, "")
        if method is None or "id" not in message:
            self.child.send(line)  # a notification, or the client's answer to a request
            return Reply(202, session_id, "")
        await self._request(self.child, message, line, sink, on_reader)
        return Reply(200, session_id, _JSON)

    async def _initialize(self, message: dict[str, Any], line: bytes, sink: MessageSink) -> Reply:
        """The child's one ``initialize``, or its result again for a later session."""
        await self._initializing.acquire()
        try:
            child = await self.running()
            session_id = self.session_id
            if self.initialized is not None:
                sink(jsonrpc.result_response(message.get("id"), self.initialized))
                return Reply(200, session_id, _JSON)

            def keep(answer: Any) -> None:
                if (
                    isinstance(answer, dict)
                    and isinstance(answer.get("result"), dict)
                    and answer.get("id") == message.get("id")
                    and child is self.child
                ):
                    self.initialized = answer["result"]
                sink(answer)

            await self._request(child, message, line, keep, None)
            return Reply(200, session_id, _JSON)
        finally:
            self._initializing.release()

    async def _request(
        self,
        child: ChildProcess,
        message: dict[str, Any],
        line: bytes,
        sink: MessageSink,
        on_reader: Callable[[BodyReader], None] | None,
    ) -> None:
        request_id = message["id"]
        if type(request_id) is not int or request_id in self.calls:
            raise UpstreamError(self.name, "refused", f"unusable request id {request_id!r}")
        if len(self.calls) >= MAX_PENDING:
            raise UpstreamError(self.name, "unavailable", "too many requests in flight")
        call = Call(self, request_id, sink)
        meta = _field(message, "params", "_meta")
        call.progress_token = meta.get("progressToken") if isinstance(meta, dict) else None
        timeout = self.config.timeout
        call.timer = self.clock.callLater(
            timeout,
            self.end_call,
            call,
            UpstreamError(self.name, "timeout", "no answer within the timeout"),
        )
        self.calls[request_id] = call
        if on_reader is not None:
            on_reader(call)
        child.send(line)
        try:
            await call.done
        finally:
            # Cancelled (Calls.cancel) or closed: forgotten all the same.  Only forgotten:
            # firing call.done here would resume this very coroutine while it runs (a
            # coroutine closed by the collector raises "coroutine already executing").
            self._forget(call)

    async def stream(self, sink: MessageSink, on_reader: Callable[[BodyReader], None]) -> None:
        stream = Stream(self, sink)
        self.streams.append(stream)
        on_reader(stream)
        try:
            await stream.done
        finally:
            stream.forget()  # as in _request: never fire the Deferred this coroutine awaits

    async def stop(self) -> None:
        """Stop for good: calls fail, streams end, the child is asked to exit."""
        self.closed = True
        child = self.child
        error = UpstreamError(self.name, "unavailable", "stopped")
        for call in list(self.calls.values()):
            self.end_call(call, error)
        for stream in list(self.streams):
            stream.finish()
        if child is not None:
            await child.stop()
