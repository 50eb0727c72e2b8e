"""One exchange with a backend: a request and its answer, a notification, a client's answer.

Every message aigw sends upstream on a client session's behalf goes through
here: the 2026-07-28 envelope and routing headers toward backends that speak
it, the session repair when a backend forgot its session, and the ``Collector``
that picks the answer out of everything the backend sends meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.logger import Logger

from aigw.gateway.answers import UpstreamAnswers, Where
from aigw.gateway.errors import GatewayError
from aigw.gateway.fanout import fan_out
from aigw.gateway.flow import Valve
from aigw.protocol import jsonrpc
from aigw.protocol.ping import pong
from aigw.protocol.revision import envelope, routing_headers
from aigw.protocol.versions import is_modern
from aigw.tracing.api import Tracer, Untraced, UpstreamSpan
from aigw.upstream.api import (
    BodyReader,
    Reply,
    UpstreamError,
    UpstreamSessionGone,
    UpstreamTransport,
    ignore,
)

if TYPE_CHECKING:
    from aigw.gateway.backends import BackendSessions
    from aigw.gateway.catalog import ParamHeaders
    from aigw.gateway.client_sessions import ClientSession
    from aigw.principal import Principal
    from aigw.sealed.session_id import BackendSession


class Collector:
    """Waits for the answer with ``request_id``; hands everything else to ``other``."""

    def __init__(
        self,
        request_id: int,
        other: Callable[[Any], None] | None = None,
        valve: Valve | None = None,
    ) -> None:
        self.request_id = request_id
        self.other = other
        #: The client's flow control, when what the reply carries goes to a client.
        self.valve = valve
        self.message: dict[str, Any] | None = None
        self.reader: BodyReader | None = None
        self.pending: Deferred[Any] | None = None
        self.cancelled = False

    def attach(self, reader: BodyReader) -> None:
        self.reader = reader
        if self.valve is not None:
            self.valve.add(reader)

    def detach(self) -> None:
        """The exchange is over: drop the reader, which holds ``sink`` (and so this
        collector), so reference counting frees the exchange, not the garbage collector;
        and take it out of the valve, which lives as long as the client's reply."""
        reader, self.reader = self.reader, None
        if reader is not None and self.valve is not None:
            self.valve.remove(reader)

    def sink(self, message: Any) -> None:
        if isinstance(message, list):
            # A batch (JSON-RPC 2.0 §6) is one array of messages: an array in it is no
            # message (``elsewhere``'s), not a batch to walk, however deep it nests.
            for item in message:
                self._take(item)
            return
        self._take(message)

    def _take(self, message: Any) -> None:
        if (
            isinstance(message, dict)
            and type(message.get("id")) is int  # not True, not 1.0: ids aigw sent are ints
            and message["id"] == self.request_id
            and ("result" in message or "error" in message)
        ):
            self.message = message
            if self.reader is not None:
                self.reader.finish()
            return
        self.elsewhere(message)

    def elsewhere(self, message: Any) -> None:
        """A message of the reply that is not the answer: ``other``'s, if any."""
        if self.other is not None:
            self.other(message)

    def result(self, backend: str) -> dict[str, Any]:
        if self.message is None:
            raise UpstreamError(backend, "bad_reply", "the reply ended without an answer")
        return self.message


class OwnCollector(Collector):
    """The collector of a request aigw makes outside any client session: ``initialize``
    and ``server/discover`` while opening an upstream session (``backends.py``), the
    doctor's ``tools/list``.  Only the answer matters; a ping the backend sends on the
    reply is answered at once (basic/utilities/ping, the receiver "MUST respond
    promptly"; basic/lifecycle "Initialization" lets a server ping before it is
    initialized), and any other request refused at once (``refused_own``), on the
    session the reply's head names.

    That head comes before its SSE body (``BodyReader.session_id``: the
    ``Mcp-Session-Id`` an ``initialize`` reply assigns, else the request's), so the pong
    can be POSTed while the answer is still to come.  A reply naming no session is a
    backend that assigned none (2025-11-25 basic/transports "Session Management": a
    server MAY assign one at initialization, and only an assigned id is sent back),
    or a 2026-07-28 one, which has no sessions: the pong goes without one, as every
    other request to that backend does.  ``version``: the ``MCP-Protocol-Version`` it
    carries, the revision spoken; None while ``initialize`` is read, since nothing is
    negotiated yet and "Protocol Version Header" asks the header only of requests
    after it, with the negotiated version: a server refuses (400) one it does not
    support, and assumes its own default or the session's when there is none.
    """

    def __init__(
        self,
        request_id: int,
        answers: UpstreamAnswers,
        backend: str,
        version: str | None,
        principal: Principal | None,
    ) -> None:
        super().__init__(request_id)
        self.answers = answers
        self.backend = backend
        self.version = version
        self.principal = principal
        #: The session the reply's head named (``attach``).
        self.session_id: str | None = None

    def attach(self, reader: BodyReader) -> None:
        super().attach(reader)
        self.session_id = reader.session_id

    def elsewhere(self, message: Any) -> None:
        """A ping is answered; any other request refused at once (``refused_own``)."""
        where = (self.backend, self.session_id, self.version)
        refused_own(self.answers, where, self.principal, message)


#: ``refused_own``'s ``data.reason`` (``protocol/refusals.py``).
OWN_REQUEST = "own_request"


def refused_own(
    answers: UpstreamAnswers, where: Where, principal: Principal | None, message: Any
) -> None:
    """Answer a ping a backend sent on the reply of a request aigw made of its own
    (``initialize``, ``server/discover``, a list, ``logging/setLevel``), and refuse any
    other request there rather than leave it to the backend's timeout: no client made
    that request, so none is there to answer (SEP-2260, 2026-07-28: a server's request
    MUST be made in association with a client's; basic/lifecycle: before
    ``initialized`` a server SHOULD NOT send requests other than pings and logging)."""
    if answers.pinged(where, principal, message):
        return
    why = "sent on the reply of a request aigw made itself, which no client can answer"
    answers.refused(where, principal, message, why, OWN_REQUEST)


class Exchange:
    """Sends requests and notifications to the backends of a client session."""

    log = Logger()

    def __init__(
        self,
        transports: Mapping[str, UpstreamTransport],
        backends: BackendSessions,
        param_headers: ParamHeaders,
        ids: Iterator[int],
        tracer: Tracer,
        answers: UpstreamAnswers,
    ) -> None:
        self.transports = transports
        self.answers = answers
        self.tracer = tracer
        self.backends = backends
        self.param_headers = param_headers
        self._ids = ids

    def transport(self, backend: str) -> UpstreamTransport:
        """The backend's transport; a request that began before a reload removed the
        backend, and outlived its grace (``aigw/reload.py``), finds none."""
        transport = self.transports.get(backend)
        if transport is None:
            raise UpstreamError(backend, "unavailable", "removed from the configuration")
        return transport

    def next_id(self) -> int:
        """A fresh upstream request id (aigw's own: clients' ids never go upstream)."""
        return next(self._ids)

    async def request(
        self,
        session: ClientSession,
        backend: str,
        upstream_id: int,
        method: str,
        params: dict[str, Any],
        collector: Collector,
        retry: bool = True,
    ) -> dict[str, Any] | None:
        """The backend's answer to one request (None: cancelled before it came)."""
        upstream_session = session.backends.get(backend)
        if upstream_session is None:
            raise UpstreamError(backend, "unavailable", "not part of this session")
        version = upstream_session.protocol_version
        headers: dict[bytes, bytes] | None = None
        if is_modern(version):
            # 2026-07-28 streamable-http "Request Metadata": envelope and routing headers.
            params = envelope(params, version, session.input_capabilities or {}, session.log_level)
            try:
                headers = routing_headers(method, params)
                if method == "tools/call":
                    headers.update(self.param_headers.mirrored(backend, params))
            except UnicodeEncodeError:
                # "Value Encoding" sends a value that is not header-safe as Base64 of its
                # UTF-8, and a lone surrogate ("\ud800", valid JSON text) has none.
                raise GatewayError(
                    jsonrpc.INVALID_PARAMS,
                    f"{method}: a value the backend gets in a header (Mcp-Name, Mcp-Param-*) "
                    "holds a lone surrogate, which no UTF-8 carries",
                ) from None
        call = self.tracer.upstream(session.trace, backend, method)
        if call.context is not None:
            # W3C Trace Context §3.2: the backend continues this call's span (or, with
            # tracing off, the client's trace as it came), in the headers and in _meta
            # (SEP-414), which is all a stdio backend sees.
            headers = {} if headers is None else headers
            call.context.add_headers(headers)
            params = call.context.in_meta(params)
        body = jsonrpc.dumps(jsonrpc.request(upstream_id, method, params))
        posting = ensureDeferred(
            self.transport(backend).post(
                body,
                collector.sink,
                upstream_session.session_id,
                version,
                collector.attach,
                headers,
                principal=session.principal,
            )
        )
        collector.pending = posting
        try:
            if type(call) is Untraced:
                await posting  # nothing records the call: no span to finish
            else:
                await self._traced(posting, call)
        except CancelledError:
            return None  # cancelled before the backend answered (see Calls.cancel)
        except UpstreamSessionGone:
            if not retry:
                raise
            await self.backends.repair(session, backend)
            return await self.request(
                session, backend, upstream_id, method, params, collector, False
            )
        except UpstreamError:
            if collector.cancelled:
                return None  # the reader was stopped because the client cancelled
            self.backends.forget_revision(backend)  # re-probed at the next open
            raise
        finally:
            collector.detach()
        if collector.cancelled:
            return None
        return collector.result(backend)

    @staticmethod
    async def _traced(posting: Deferred[Reply], call: UpstreamSpan) -> None:
        """Wait for ``posting``; finish its span with the status or the failure."""
        try:
            reply = await posting
        except UpstreamError as error:
            call.finish(error.status, error.kind)
            raise
        except CancelledError:
            call.finish(None, "cancelled")
            raise
        call.finish(reply.status, None)

    async def ask(
        self, session: ClientSession, backend: str, method: str, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A request of aigw's own (lists, setLevel, subscriptions): only the answer
        matters, but a ping the backend sends meanwhile is answered, and any other
        request refused (``refused_own``)."""
        upstream_id = self.next_id()

        def other(message: Any) -> None:
            upstream_session = session.backends.get(backend)
            if upstream_session is not None:  # else no longer in the session: nowhere to answer
                refused_own(self.answers, _where(upstream_session), session.principal, message)

        return await self.request(
            session, backend, upstream_id, method, params, Collector(upstream_id, other)
        )

    async def broadcast(
        self, session: ClientSession, names: list[str], method: str, params: dict[str, Any]
    ) -> None:
        """A request of aigw's own to these backends of the session, all at once."""
        await fan_out(
            names,
            lambda name: self.ask(session, name, method, params),
            self.log,
            "{method} to {backend}: {reason}",
            method=method,
        )

    async def cancel(
        self, session: ClientSession, backend: str, collector: Collector, reason: str
    ) -> None:
        """Cancel the request ``collector`` waits for: tell its backend, stop reading its
        reply (basic/utilities/cancellation).  A collector of id 0 waits on aigw's own
        Deferred (``pending``), with nothing upstream to tell."""
        collector.cancelled = True
        if collector.request_id:
            # On the answers' slots (``UpstreamTransport.respond``): with every request
            # slot held, the calls it cancels among them, it would wait for their end.
            await self.notify(
                session,
                backend,
                "notifications/cancelled",
                {"requestId": collector.request_id, "reason": reason},
                unblocking=True,
            )
        if collector.reader is not None:
            collector.reader.stop()
        elif collector.pending is not None and not collector.pending.called:
            # No answer has begun: abort the request itself, the only signal a
            # 2026-07-28 backend gets (streamable-http "Cancellation").
            collector.pending.cancel()

    async def notify(
        self,
        session: ClientSession,
        backend: str,
        method: str,
        params: dict[str, Any],
        unblocking: bool = False,
    ) -> None:
        """A notification to the backend on the session's upstream session; ``unblocking``:
        one that must not queue behind the requests it concerns (a cancellation)."""
        upstream_session = session.backends.get(backend)
        if upstream_session is None or is_modern(upstream_session.protocol_version):
            # 2026-07-28 has no client notifications over HTTP; closing the
            # request's stream is its cancellation (streamable-http "Cancellation").
            return
        body = jsonrpc.dumps(jsonrpc.notification(method, params))
        transport = self.transport(backend)
        session_id, version = upstream_session.session_id, upstream_session.protocol_version
        try:
            if unblocking:
                await transport.respond(body, session_id, version, principal=session.principal)
            else:
                await transport.post(body, ignore, session_id, version, principal=session.principal)
        except UpstreamError as error:
            self.log.info(
                "notification {method} to {backend}: {error}",
                method=method,
                backend=backend,
                error=str(error),
            )

    def pinged(
        self, upstream_session: BackendSession | None, principal: Principal, message: Any
    ) -> bool:
        """Whether ``message`` is the backend's ping, which aigw then answers at once on
        the session it came on (``protocol/ping.py`` says why aigw and not a client)."""
        if upstream_session is None:
            return pong(message) is not None  # no longer in the session: nowhere to answer
        return self.answers.pinged(_where(upstream_session), principal, message)

    async def answer(self, session: ClientSession, backend: str, payload: dict[str, Any]) -> None:
        """The client's response to a backend's request, POSTed back to that backend on
        the upstream session it came on (``answers.py``)."""
        upstream_session = session.backends.get(backend)
        if upstream_session is None:
            return
        await self.answers.post(_where(upstream_session), session.principal, payload)

    def refuse(
        self,
        upstream_session: BackendSession | None,
        principal: Principal,
        refused: jsonrpc.ErrorResponse,
    ) -> None:
        """aigw's refusal of a backend's request no client can take, POSTed at once on the
        upstream session it came on, bounded per session as pongs are (``answers.py``)."""
        if upstream_session is not None:  # else no longer in the session: nowhere to answer
            self.answers.answer_now(_where(upstream_session), principal, jsonrpc.to_dict(refused))


def _where(upstream_session: BackendSession) -> Where:
    return (
        upstream_session.name,
        upstream_session.session_id,
        upstream_session.protocol_version,
    )
