"""Upstream sessions: probe a backend's revision, open, repair, join late, end.

Each client session holds one upstream session per backend; their ids travel
inside the sealed ``Mcp-Session-Id`` (``client_sessions.py``).  What changes
after sealing (a session re-opened because the backend forgot it, a backend
that joined late) is remembered here, bounded, by client binding.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from aigw.gateway.answers import UpstreamAnswers
from aigw.gateway.capabilities import routing_capabilities
from aigw.gateway.exchange import OwnCollector
from aigw.gateway.fanout import fan_out
from aigw.lru import LRU
from aigw.principal import Principal, UserKey
from aigw.protocol import jsonrpc
from aigw.protocol.revision import (
    CLIENT_INFO,
    LEGACY,
    MODERN,
    choose,
    discover_request,
    routing_headers,
)
from aigw.protocol.versions import LATEST_VERSION
from aigw.sealed.session_id import BackendSession
from aigw.upstream.api import AuthorizationRequired, UpstreamError, UpstreamTransport, ignore

if TYPE_CHECKING:
    from aigw.gateway.client_sessions import ClientSession

#: An upstream session and the instructions its backend gave, as opened.
Opened = tuple[BackendSession, str | None]

#: Sent once ``initialize`` is answered (basic/lifecycle "Initialization").
INITIALIZED = jsonrpc.dumps(jsonrpc.notification("notifications/initialized"))

REPAIRED_SESSIONS_MAX = 10000
JOIN_RETRY_SECONDS = 30.0


#: What aigw declares to session backends for 2026-07-28 clients (2025-11-25 client/*).
POOL_CAPABILITIES: dict[str, Any] = {
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
    "roots": {},
}


class BackendSessions:
    """Opens and keeps track of upstream sessions, and of the revision each backend speaks."""

    log = Logger()

    def __init__(
        self,
        transports: Mapping[str, UpstreamTransport],
        clock: Any,
        ids: Iterator[int],
        answers: UpstreamAnswers,
    ) -> None:
        self.transports = transports
        #: Where a ping on the reply of ``initialize`` or ``server/discover`` is answered.
        self.answers = answers
        self.clock = clock
        self._ids = ids
        # The revision each backend speaks (revision.py), until it fails.
        self.revisions: dict[str, str] = {}
        # When a backend that was down at initialize may be tried again, per session.
        self._join_after: OrderedDict[tuple[str, str], float] = OrderedDict()
        # Upstream sessions re-opened after a backend forgot them or joined late.
        self._repaired: LRU[tuple[str, str], BackendSession] = LRU(REPAIRED_SESSIONS_MAX)
        # (user, backend): user_oauth backends the user has not authorized.
        self._unauthorized: LRU[tuple[UserKey, str], bool] = LRU(REPAIRED_SESSIONS_MAX)

    def repaired(self, binding: str, name: str) -> BackendSession | None:
        """The upstream session that replaced the sealed one of this client binding, if any."""
        return self._repaired.get((binding, name))

    def forget_revision(self, name: str) -> None:
        """The backend failed: probe it again at the next open (it may have changed)."""
        self.revisions.pop(name, None)

    def reconfigured(self, replaced: Iterable[str]) -> None:
        """A reload: replaced backends are probed again, and every backend missing from a
        session may join it at once (a new one would otherwise wait out a join window)."""
        for name in replaced:
            self.revisions.pop(name, None)
        self._join_after.clear()

    async def open(
        self,
        names: Iterable[str],
        version: str,
        client_capabilities: dict[str, Any],
        principal: Principal | None = None,
    ) -> list[Opened]:
        """One upstream session per backend, in parallel; those that fail are left out."""
        opened = await fan_out(
            names,
            lambda name: self._open_one(name, version, client_capabilities, principal),
            self.log,
            "backend {backend} left out of the session: {reason}",
        )
        return [session for _, session in opened]

    async def open_for_pool(self, principal: Principal, names: list[str]) -> list[BackendSession]:
        """Upstream sessions for a 2026-07-28 client: the newest legacy revision.

        They declare what a 2026-07-28 client may answer (sampling, elicitation in both
        modes, roots), which aigw asks it with ``input_required`` (``parking.py``); a request
        whose client did not declare it gets the backend's question refused."""
        opened = await self.open(names, LATEST_VERSION, POOL_CAPABILITIES, principal)
        return [session for session, _ in opened]

    async def _open_one(
        self,
        name: str,
        version: str,
        client_capabilities: dict[str, Any],
        principal: Principal | None,
    ) -> Opened:
        """Open the backend in the revision it speaks, probing it first if unknown.

        A failure forgets the revision: the backend may come back as another one.
        """
        known = self.revisions.get(name)
        user = None if principal is None else (principal.user, name)
        try:
            if known == LEGACY:
                opened = await self._initialize(name, version, client_capabilities, principal)
            elif known == MODERN:
                discovered = await self._discover(name, principal)
                if discovered is None:
                    raise UpstreamError(name, "refused", "no longer speaks 2026-07-28")
                opened = discovered
            else:
                opened = await self._probe(name, version, client_capabilities, principal)
        except AuthorizationRequired:
            # user_oauth: the user has not authorized aigw there (yet, or any more); the
            # backend is as it was.  Tried again at every list, not after a join window:
            # finding out costs a store lookup, and the user may authorize any moment.
            if user is not None:
                self._unauthorized.put(user, True)
            raise
        except UpstreamError:
            self.revisions.pop(name, None)
            raise
        if user is not None:
            self._unauthorized.pop(user)
        return opened

    async def _probe(
        self,
        name: str,
        version: str,
        client_capabilities: dict[str, Any],
        principal: Principal | None,
    ) -> Opened:
        """``server/discover``, then ``initialize``: a backend that answers both is
        dual-era and gets sessions (revision.py says why); one that refuses
        ``initialize`` speaks only 2026-07-28."""
        discovered = await self._discover(name, principal)
        if discovered is None:
            opened = await self._initialize(name, version, client_capabilities, principal)
            self.revisions[name] = LEGACY
            return opened
        try:
            opened = await self._initialize(name, version, client_capabilities, principal)
        except UpstreamError as error:
            if error.kind not in ("refused", "http_error", "bad_reply"):
                raise
            self.revisions[name] = MODERN
            return discovered
        self.revisions[name] = LEGACY
        return opened

    async def _discover(self, name: str, principal: Principal | None) -> Opened | None:
        """``server/discover`` at 2026-07-28: the backend's side of a session-less
        "session" if it speaks only that, None if it is to be spoken to with sessions.

        An HTTP error or a JSON-RPC error is a legacy server's answer (basic/versioning
        "Backward Compatibility"); an unreachable backend raises (nothing learnt).
        """
        request_id = next(self._ids)
        answer = OwnCollector(request_id, self.answers, name, MODERN, principal)
        body = jsonrpc.dumps(discover_request(request_id))
        try:
            await self.transports[name].post(
                body,
                answer.sink,
                None,
                MODERN,
                answer.attach,
                routing_headers("server/discover", {}),
                principal=principal,
            )
        except UpstreamError as error:
            if error.kind == "http_error":
                return None
            raise
        finally:
            answer.detach()
        result = answer.message.get("result") if answer.message else None
        if choose(result) != MODERN:
            return None
        assert isinstance(result, dict)
        session = BackendSession(
            name, None, MODERN, routing_capabilities(result.get("capabilities"))
        )
        instructions = result.get("instructions")
        return session, instructions if isinstance(instructions, str) else None

    async def _initialize(
        self,
        name: str,
        version: str,
        client_capabilities: dict[str, Any],
        principal: Principal | None,
    ) -> Opened:
        """``initialize`` then ``notifications/initialized`` with one backend."""
        upstream = self.transports[name]
        request_id = next(self._ids)
        params = {
            "protocolVersion": version,
            "capabilities": client_capabilities,
            "clientInfo": CLIENT_INFO,
        }
        body = jsonrpc.dumps(jsonrpc.request(request_id, "initialize", params))
        # No version for a ping's answer yet: none is negotiated (``OwnCollector``).
        answer = OwnCollector(request_id, self.answers, name, None, principal)
        try:
            reply = await upstream.post(
                body, answer.sink, None, version, answer.attach, principal=principal
            )
        finally:
            answer.detach()
        message = answer.result(name)
        if "error" in message:
            raise UpstreamError(name, "refused", str(message["error"].get("message", "")))
        result = message.get("result")
        if not isinstance(result, dict):
            raise UpstreamError(name, "bad_reply", "initialize result is not an object")
        upstream_version = result.get("protocolVersion")
        if not isinstance(upstream_version, str):
            raise UpstreamError(name, "bad_reply", "initialize result has no protocolVersion")
        capabilities = routing_capabilities(result.get("capabilities"))
        await upstream.post(
            INITIALIZED, ignore, reply.session_id, upstream_version, principal=principal
        )
        instructions = result.get("instructions")
        session = BackendSession(
            name=name,
            session_id=reply.session_id,
            protocol_version=upstream_version,
            capabilities=capabilities,
        )
        return session, instructions if isinstance(instructions, str) else None

    async def end_upstream(self, backend: BackendSession, principal: Principal) -> None:
        """End one upstream session (DELETE) of ``principal`` that aigw no longer keeps;
        failures logged."""
        transport = self.transports.get(backend.name)
        if backend.session_id is None or transport is None:
            return  # sessionless, or its backend is gone (a reload removed it)
        try:
            await transport.delete(
                backend.session_id, backend.protocol_version, principal=principal
            )
        except UpstreamError as error:
            self.log.info(
                "ending upstream session of {backend}: {error}", backend=backend.name, error=error
            )

    async def end_session(self, session: ClientSession) -> None:
        """DELETE: end every upstream session of this client session."""
        for name, backend in session.backends.items():
            if backend.session_id is None:
                continue
            try:
                await self.transports[name].delete(
                    backend.session_id, backend.protocol_version, principal=session.principal
                )
            except UpstreamError as error:
                self.log.info(
                    "ending upstream session of {backend}: {error}", backend=name, error=error
                )
            self._repaired.pop((session.binding, name))

    async def join_missing(self, session: ClientSession) -> None:
        """Backends that were down when the session opened join it once they answer.

        Tried at most every JOIN_RETRY_SECONDS per session and backend, on the
        first page of a list, so a backend that comes back shows up again.
        """
        now = self.clock.seconds()
        user = session.principal.user
        missing = [
            name
            for name in session.snapshot.order
            if name not in session.backends
            and (
                self._join_after.get((session.binding, name), 0.0) <= now
                or self._unauthorized.get((user, name)) is not None
            )
        ]
        if not missing:
            return
        for name in missing:
            self._join_after[(session.binding, name)] = now + JOIN_RETRY_SECONDS
        while len(self._join_after) > REPAIRED_SESSIONS_MAX:
            self._join_after.popitem(last=False)
        # A late joiner is told what the client can answer, like those that were up
        # at initialize: the sealed session id says it (any process can do this).
        state = session.state
        opened = await self.open(
            missing, state.protocol_version, state.client_capabilities or {}, session.principal
        )
        for joined, _ in opened:
            self._remember(session, joined)

    async def join(self, session: ClientSession, name: str) -> None:
        """Open one backend for this session now, its failure raised: a call naming a
        ``user_oauth`` backend that the user had not authorized when the session opened
        (``calls.py``), so that the user learns how to."""
        state = session.state
        opened, _ = await self._open_one(
            name, state.protocol_version, state.client_capabilities or {}, session.principal
        )
        self._remember(session, opened)

    async def repair(self, session: ClientSession, backend: str) -> None:
        """The backend forgot our session (restart): open a new one, transparently."""
        self.log.info("backend {backend} forgot the session; re-initializing", backend=backend)
        state = session.state
        opened = await self.open(
            [backend], state.protocol_version, state.client_capabilities or {}, session.principal
        )
        if not opened:
            raise UpstreamError(backend, "unavailable", "could not re-open the upstream session")
        self._remember(session, opened[0][0])

    def _remember(self, session: ClientSession, backend_session: BackendSession) -> None:
        """An upstream session opened after the client's session was sealed (bounded)."""
        session.backends[backend_session.name] = backend_session
        if session.on_reopen is not None:
            session.on_reopen(backend_session)
            return
        self._repaired.put((session.binding, backend_session.name), backend_session)
