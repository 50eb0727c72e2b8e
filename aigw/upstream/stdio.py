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

from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from aigw.config import BackendConfig
from aigw.events import GatewayObserver
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.upstream.api import (
    BodyReader,
    MessageSink,
    Reply,
    UpstreamError,
    UpstreamSessionGone,
    ignore,
)
from aigw.upstream.stdio_session import StdioSession

#: What a child inherits of aigw's environment; the backend's ``env`` adds the rest.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def child_environment(extra: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """The minimal environment a child gets: ``INHERITED`` from ``own``, then ``extra``."""
    env = {name: own[name] for name in INHERITED if name in own}
    env.update(extra)
    return env


class StdioUpstream:
    """A backend run as a child process (or one per user): ``UpstreamTransport`` over stdio."""

    log = Logger()

    def __init__(
        self,
        config: BackendConfig,
        reactor: Any,
        observer: GatewayObserver | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if config.command is None:
            raise ValueError(f"backend {config.name!r} has no command")
        self.config = config
        self.name = config.name
        self.clock = reactor
        self.observer = observer
        self.environment = child_environment(config.env, os.environ if environ is None else environ)
        self._nonce = secrets.token_hex(4)
        self._generations = itertools.count(1)
        self._sessions: OrderedDict[tuple[str, str], StdioSession] = OrderedDict()
        self._idle: dict[tuple[str, str], IDelayedCall] = {}
        self._closed = False

    def new_session_id(self) -> str:
        """A session id no process had before, here (the counter) or elsewhere (the nonce)."""
        return f"stdio-{self._nonce}-{next(self._generations)}"

    def _session(self, principal: Principal | None) -> StdioSession:
        """The process (and session) this principal's messages go to: made, not started."""
        if self._closed:
            raise UpstreamError(self.name, "unavailable", "stopped")
        scope = self.config.stdio
        if scope.scope == "shared":
            key = ("", "")
        elif principal is None:
            raise UpstreamError(self.name, "refused", "a per-user process needs a user")
        else:
            key = principal.user
        session = self._sessions.get(key)
        if session is None:
            if scope.scope == "user" and len(self._sessions) >= scope.max_processes:
                self._make_room()
            session = self._sessions[key] = StdioSession(
                self.config, self.clock, self.environment, self.new_session_id, self.observer
            )
        self._sessions.move_to_end(key)
        if scope.scope == "user":
            self._touch(key)
        return session

    def _make_room(self) -> None:
        """Stop the least recently used idle process, or refuse: all are busy."""
        for key, session in self._sessions.items():
            if not session.busy:
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
        session = self._sessions.get(key)
        if session is not None and session.busy:
            self._touch(key)
            return
        self.log.info("backend {backend}: stopping an idle per-user process", backend=self.name)
        self._retire(key)

    def _retire(self, key: tuple[str, str]) -> None:
        session = self._sessions.pop(key, None)
        timer = self._idle.pop(key, None)
        if timer is not None and timer.active():
            timer.cancel()
        if session is not None:
            ensureDeferred(session.stop()).addErrback(
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
        if b"\n" in body:
            # One message, one line (basic/transports "stdio"): written again as every
            # message is (``jsonrpc.dumps``: compact, lone surrogates escaped, which no
            # UTF-8 holds; valid JSON text, RFC 8259 section 8.2).
            body = jsonrpc.dumps(message)
        session = self._session(principal)
        return await session.post(message, body, sink, session_id, on_reader)

    async def respond(
        self,
        body: bytes,
        session_id: str | None,
        protocol_version: str | None,
        principal: Principal | None = None,
    ) -> None:
        """Write the response to the child: no slot to wait for over stdio."""
        await self.post(body, ignore, session_id, protocol_version, principal=principal)

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
        on_event_id: Callable[[str], None] | None = None,
    ) -> Reply:
        """The child's messages that belong to no call, until stopped or the child ends
        (stdio has no event ids: ``on_event_id`` is never called)."""
        session = self._session(principal)
        if session_id is None or session_id != session.session_id:
            raise UpstreamSessionGone(self.name, "session_gone", "the process was restarted")
        await session.stream(sink, on_reader)
        return Reply(200, session_id, "text/event-stream")

    async def delete(
        self, session_id: str, protocol_version: str | None, principal: Principal | None = None
    ) -> int:
        """Nothing to end: the session is the process's, and ends with it."""
        return 200

    async def close(self) -> None:
        """Stop every process (shutdown)."""
        self._closed = True
        keys = list(self._sessions)
        stopping = [ensureDeferred(self._sessions[k].stop()) for k in keys]
        for key in keys:
            timer = self._idle.pop(key, None)
            if timer is not None and timer.active():
                timer.cancel()
        self._sessions.clear()
        await DeferredList(stopping, consumeErrors=True)
