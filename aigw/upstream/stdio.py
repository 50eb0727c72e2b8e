"""A backend run as a child process speaking MCP over stdio (MCP basic/transports "stdio").

How stdio maps onto the ``UpstreamTransport`` contract the gateway speaks:

- One process is one MCP session.  The first ``initialize`` of a process goes to it;
  later ones (other client sessions sharing the process) are answered with its result,
  and ``notifications/initialized`` reaches it once.  ``Reply.session_id`` names the
  process (``stdio-<nonce>-<n>``, new for every start): a message carrying an older
  one raises ``UpstreamSessionGone``, so the gateway's repair path initializes the
  restarted process (``Exchange.request``).
- ``post`` writes one line and, for a request, waits for the response with its id:
  aigw's upstream ids are unique in the gateway, so the one pipe is demultiplexed
  by id.  A message from the child that answers nothing goes to the call whose
  progress token it carries; a server request to the only call in flight; anything
  else to the open ``get_stream`` sinks (a notification to each, a request to one).
- ``server/discover`` fails like an HTTP error, so the prober speaks session-based
  MCP to the child; ``listen`` answers 405 (no 2026-07-28 streams); ``delete`` does
  nothing (the session ends with the process).
- The child starts on first use.  When it dies, its calls fail (``unavailable``) and
  it starts again on next use, not before a back-off (0.5 s doubling to 30 s while
  it keeps dying young).  ``close`` stops it: stdin closed, SIGTERM, SIGKILL.
- ``stdio.scope``: ``shared``, one process for the gateway; ``user``, one per
  principal (issuer, subject), at most ``max_processes`` (the least recently used
  idle one makes room), each stopped after ``idle_timeout`` unused.
- The child's environment is a minimal one (``INHERITED``) plus the backend's ``env``:
  aigw's own environment, secrets included, is not passed on.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, DeferredLock, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater
from twisted.logger import Logger

from aigw.config import BackendConfig
from aigw.principal import Principal
from aigw.upstream.api import (
    BodyReader,
    MessageSink,
    Reply,
    UpstreamError,
    UpstreamSessionGone,
)
from aigw.upstream.stdio_process import ChildProcess

#: What a child inherits of aigw's environment; the backend's ``env`` adds the rest.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
#: Requests in flight to one process.
MAX_PENDING = 256
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
#: A process that ran this long before dying is restarted after the first back-off.
STABLE_SECONDS = 10.0

_JSON = "application/json"


def child_environment(extra: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """The minimal environment a child gets: ``INHERITED`` from ``own``, then ``extra``."""
    env = {name: own[name] for name in INHERITED if name in own}
    env.update(extra)
    return env


class _Call:
    """One request in flight: its sink, and the reader the gateway may stop or finish."""

    def __init__(self, process: _Process, request_id: int, sink: MessageSink) -> None:
        self.process = process
        self.request_id = request_id
        self.sink = sink
        self.done: Deferred[None] = Deferred()
        self.progress_token: object = None
        self.timer: IDelayedCall | None = None

    def deliver(self, message: Any) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.reset(self.process.upstream.config.timeout)
        self.sink(message)

    def stop(self) -> None:
        """The gateway gave up (cancellation): the answer, if it comes, is dropped."""
        self.process.end_call(self, UpstreamError(self.process.name, "unavailable", "stopped"))

    def finish(self) -> None:
        self.process.end_call(self)


class _Stream:
    """A ``get_stream`` being read: server messages that belong to no call."""

    last_event_id: str | None = None

    def __init__(self, process: _Process, sink: MessageSink) -> None:
        self.process = process
        self.sink = sink
        self.done: Deferred[None] = Deferred()

    def stop(self) -> None:
        self.finish()

    def finish(self) -> None:
        if self in self.process.streams:
            self.process.streams.remove(self)
        if not self.done.called:
            self.done.callback(None)


class _Process:
    """One child process slot: started on use, restarted with back-off, one session each."""

    log = Logger()

    def __init__(self, upstream: StdioUpstream) -> None:
        self.upstream = upstream
        self.name = upstream.name
        self.clock = upstream.clock
        self.child: ChildProcess | None = None
        self.session_id: str | None = None
        self.initialized: dict[str, Any] | None = None  # the initialize result of this child
        self.announced = False  # notifications/initialized sent to this child
        self.calls: dict[int, _Call] = {}
        self.streams: list[_Stream] = []
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
            if wait > self.upstream.config.timeout:
                raise UpstreamError(self.name, "unavailable", f"restarting in {wait:.1f}s")
            await deferLater(self.clock, wait, lambda: None)

    def _spawn(self) -> ChildProcess:
        config = self.upstream.config
        assert config.command is not None
        child = ChildProcess(self.name, self._received, self.clock)
        self._started_at = self.clock.seconds()
        try:
            self.clock.spawnProcess(
                child,
                config.command,
                [config.command, *config.args],
                env=self.upstream.environment,
                path=config.cwd,
            )
        except OSError as error:
            self._back_off()
            raise UpstreamError(self.name, "unavailable", f"cannot start: {error}") from None
        self.child = child
        self.session_id = self.upstream.new_session_id()
        child.ended.addCallback(self._ended, child)
        return child

    def _back_off(self) -> None:
        """The next start waits: twice as long as the last time if the child died young."""
        young = self.clock.seconds() - self._started_at < STABLE_SECONDS
        self._delay = min(self._delay * 2, BACKOFF_MAX) if young and self._delay else BACKOFF_FIRST
        self._not_before = self.clock.seconds() + self._delay

    def _ended(self, how: str, child: ChildProcess) -> None:
        if child is not self.child:
            return
        self.child, self.session_id, self.initialized, self.announced = None, None, None, False
        self._back_off()
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
        if message["method"] == "notifications/progress":
            token = (message.get("params") or {}).get("progressToken")
            call = next((c for c in self.calls.values() if c.progress_token == token), None)
        elif "id" in message and len(self.calls) == 1:
            call = next(iter(self.calls.values()))
        if call is not None:
            call.deliver(message)
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

    def end_call(self, call: _Call, error: UpstreamError | None = None) -> None:
        if self.calls.get(call.request_id) is call:
            del self.calls[call.request_id]
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        if call.done.called:
            return
        if error is None:
            call.done.callback(None)
        else:
            call.done.errback(error)

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
                sink({"jsonrpc": "2.0", "id": message.get("id"), "result": self.initialized})
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
        call = _Call(self, request_id, sink)
        meta = (message.get("params") or {}).get("_meta")
        if isinstance(meta, dict):
            call.progress_token = meta.get("progressToken")
        timeout = self.upstream.config.timeout
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
            self.end_call(call)  # when cancelled (Calls.cancel): forgotten all the same

    async def stream(self, sink: MessageSink, on_reader: Callable[[BodyReader], None]) -> None:
        stream = _Stream(self, sink)
        self.streams.append(stream)
        on_reader(stream)
        try:
            await stream.done
        finally:
            stream.finish()

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


class StdioUpstream:
    """A backend run as a child process (or one per user): ``UpstreamTransport`` over stdio."""

    log = Logger()

    def __init__(
        self, config: BackendConfig, reactor: Any, environ: Mapping[str, str] | None = None
    ) -> None:
        if config.command is None:
            raise ValueError(f"backend {config.name!r} has no command")
        self.config = config
        self.name = config.name
        self.clock = reactor
        self.environment = child_environment(config.env, os.environ if environ is None else environ)
        self._nonce = secrets.token_hex(4)
        self._generations = itertools.count(1)
        self._processes: OrderedDict[tuple[str, str], _Process] = OrderedDict()
        self._idle: dict[tuple[str, str], IDelayedCall] = {}
        self._closed = False

    def new_session_id(self) -> str:
        """A session id no process of this gateway had before (the nonce: nor of another)."""
        return f"stdio-{self._nonce}-{next(self._generations)}"

    def _process(self, principal: Principal | None) -> _Process:
        """The process this principal's messages go to (created, not started)."""
        if self._closed:
            raise UpstreamError(self.name, "unavailable", "stopped")
        scope = self.config.stdio
        if scope.scope == "shared":
            key = ("", "")
        elif principal is None:
            raise UpstreamError(self.name, "refused", "a per-user process needs a user")
        else:
            key = (principal.issuer, principal.subject)
        process = self._processes.get(key)
        if process is None:
            if scope.scope == "user" and len(self._processes) >= scope.max_processes:
                self._make_room()
            process = self._processes[key] = _Process(self)
        self._processes.move_to_end(key)
        if scope.scope == "user":
            self._touch(key)
        return process

    def _make_room(self) -> None:
        """Stop the least recently used idle process, or refuse: all are busy."""
        for key, process in self._processes.items():
            if not process.busy:
                self._retire(key)
                return
        raise UpstreamError(
            self.name, "unavailable", f"stdio.max_processes ({self.config.stdio.max_processes})"
        )

    def _touch(self, key: tuple[str, str]) -> None:
        timer = self._idle.get(key)
        timeout = self.config.stdio.idle_timeout
        if timer is not None and timer.active():
            timer.reset(timeout)
        else:
            self._idle[key] = self.clock.callLater(timeout, self._expire, key)

    def _expire(self, key: tuple[str, str]) -> None:
        process = self._processes.get(key)
        if process is not None and process.busy:
            self._touch(key)
            return
        self.log.info("backend {backend}: stopping an idle per-user process", backend=self.name)
        self._retire(key)

    def _retire(self, key: tuple[str, str]) -> None:
        process = self._processes.pop(key, None)
        timer = self._idle.pop(key, None)
        if timer is not None and timer.active():
            timer.cancel()
        if process is not None:
            ensureDeferred(process.stop()).addErrback(
                lambda f: self.log.failure("stopping {backend}", f, backend=self.name)
            )

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
        """Write one message to the child; for a request, its answer goes to ``sink``."""
        try:
            message = json.loads(body)
        except ValueError:
            raise UpstreamError(self.name, "refused", "not JSON") from None
        if not isinstance(message, dict):
            raise UpstreamError(self.name, "refused", "batches are not sent over stdio")
        if message.get("method") == "server/discover":
            # What the prober takes for a session-based server (BackendSessions._discover).
            raise UpstreamError(self.name, "http_error", "stdio: sessions only", 400)
        if b"\n" in body:  # one message, one line (basic/transports "stdio")
            body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        process = self._process(principal)
        return await process.post(message, body, sink, session_id, on_reader)

    async def listen(
        self,
        body: bytes,
        sink: MessageSink,
        protocol_version: str,
        extra_headers: dict[bytes, bytes],
        on_reader: Callable[[BodyReader], None],
        principal: Principal | None = None,
    ) -> Reply:
        """No 2026-07-28 streams over stdio: what a backend without one answers."""
        return Reply(405, None, "")

    async def get_stream(
        self,
        sink: MessageSink,
        session_id: str | None,
        protocol_version: str | None,
        last_event_id: str | None,
        on_reader: Callable[[BodyReader], None],
        principal: Principal | None = None,
    ) -> Reply:
        """The child's messages that belong to no call, until stopped or the child ends."""
        process = self._process(principal)
        if session_id is None or session_id != process.session_id:
            raise UpstreamSessionGone(self.name, "session_gone", "the process was restarted")
        await process.stream(sink, on_reader)
        return Reply(200, session_id, "text/event-stream")

    async def delete(
        self, session_id: str, protocol_version: str | None, principal: Principal | None = None
    ) -> int:
        """Nothing to end: the session is the process's, and ends with it."""
        return 200

    async def close(self) -> None:
        """Stop every process (shutdown)."""
        self._closed = True
        keys = list(self._processes)
        stopping = [ensureDeferred(self._processes[k].stop()) for k in keys]
        for key in keys:
            timer = self._idle.pop(key, None)
            if timer is not None and timer.active():
                timer.cancel()
        self._processes.clear()
        await DeferredList(stopping, consumeErrors=True)
