"""Client sessions: issue and open the sealed ``Mcp-Session-Id``, and the per-user pool.

aigw is the server the client initializes with (MCP basic/lifecycle).  Each
client session holds one upstream session per backend; their ids travel inside
the sealed ``Mcp-Session-Id`` (``sealed/session_id.py``), so any aigw process
holding the key can serve any request.  A 2026-07-28 client has no session: its
requests use the user's pooled upstream sessions (``pool.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import attrs

from aigw.config import Config
from aigw.gateway.backends import BackendSessions
from aigw.gateway.capabilities import union_capabilities
from aigw.gateway.errors import GatewayError
from aigw.gateway.pool import UpstreamSessionPool
from aigw.gateway.snapshot import Snapshot
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.protocol.client_capabilities import declared, missing
from aigw.protocol.revision import SERVER_INFO
from aigw.protocol.versions import LATEST_VERSION, negotiate
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import (
    BackendSession,
    Ended,
    SessionCodec,
    SessionState,
    session_binding,
    session_digest,
)
from aigw.tracing.context import TraceContext


@attrs.define
class ClientSession:
    """One request's view of the client's session: who, which version, which upstream
    sessions, and the config snapshot the request is served with."""

    principal: Principal
    session_id: str
    state: SessionState
    binding: str
    backends: dict[str, BackendSession]
    snapshot: Snapshot
    #: Set for 2026-07-28 clients: where a re-opened upstream session goes (the pool)
    #: instead of the sealed session's repair table.
    on_reopen: Callable[[BackendSession], None] | None = None
    #: What the client can answer (sampling, elicitation, roots): a 2026-07-28 client's
    #: request ``_meta``, or a session client's ``initialize`` (sealed in its id); passed
    #: on to 2026-07-28 backends, which may then ask for it with ``input_required``
    #: (basic/patterns/mrtr): relayed to a 2026-07-28 client, asked of a session client
    #: by aigw itself (``asking.py``).
    input_capabilities: dict[str, Any] = attrs.field(factory=dict)
    #: A 2026-07-28 client (no session): a backend's request mid-call parks the call
    #: (``parking.py``) instead of being relayed.
    modern: bool = False
    #: The W3C trace context the request's upstream calls continue: the client's, set
    #: by the web layer, then the request's own span when tracing (``aigw/tracing``).
    trace: TraceContext | None = None
    #: The client's log level: a 2026-07-28 request's own, or what a session client
    #: last set with ``logging/setLevel`` (``log_levels.py``); None: none asked for.
    log_level: str | None = None

    @property
    def sessionless(self) -> bool:
        """A 2026-07-28 client's view: no session of its own, no server-to-client requests."""
        return not self.session_id

    @property
    def url_elicitation(self) -> bool:
        """The client can be answered the URL-elicitation-required error: it declared
        ``elicitation.url`` (2025-11-25 client/elicitation "Capabilities"), at
        ``initialize`` or (2026-07-28) in the request's ``_meta``."""
        return missing(self.input_capabilities, "elicitation/create", {"mode": "url"}) is None


class ClientSessions:
    """Issues sealed session ids, opens them, and keeps 2026-07-28 users' upstream sessions."""

    def __init__(
        self, config: Config, clock: Any, sealer: Sealer, backends: BackendSessions
    ) -> None:
        self.clock = clock
        self.backends = backends
        self.codec = SessionCodec(sealer, clock.seconds, config.sessions.ttl)
        #: Tells the other processes of an id ended here (``sessions.redis_url``:
        #: ``ended_sessions.py``, wired by ``service.py``); None: they are not told.
        self.share_end: Callable[[Ended], None] | None = None
        # Upstream sessions held for 2026-07-28 clients (they have none of their own).
        self.pool = UpstreamSessionPool(
            clock,
            backends.open_for_pool,
            backends.end_upstream,
            max_entries=config.sessions.pool_size,
            idle_seconds=config.sessions.pool_idle_timeout,
        )

    async def initialize(
        self, principal: Principal, params: dict[str, Any], snapshot: Snapshot
    ) -> tuple[dict[str, Any], str]:
        """Answer ``initialize`` and open one upstream session per backend, in parallel.

        A backend that fails is left out and logged; the session fails only
        when every backend fails (then GatewayError).
        """
        version = negotiate(params.get("protocolVersion"))
        client_capabilities = params.get("capabilities")
        if not isinstance(client_capabilities, dict):
            client_capabilities = {}
        # The backends see what the client declared, so they ask only for what it answers.
        opened = await self.backends.open(snapshot.order, version, client_capabilities, principal)
        if not opened:
            raise GatewayError(
                jsonrpc.UPSTREAM_UNAVAILABLE, "no backend is available; try again later"
            )
        state = SessionState(
            issuer=principal.issuer,
            subject=principal.subject,
            created=self.clock.seconds(),
            protocol_version=version,
            backends=tuple(session for session, _ in opened),
            client_capabilities=declared(client_capabilities),
        )
        session_id = self.codec.issue(state)
        result = {
            "protocolVersion": version,
            "capabilities": union_capabilities(s for s, _ in opened),
            "serverInfo": SERVER_INFO,
        }
        instructions = [f"## {session.name}\n{text.strip()}" for session, text in opened if text]
        if instructions:
            result["instructions"] = "\n\n".join(instructions)
        return result, session_id

    def end(self, session: ClientSession) -> None:
        """DELETE: the id opens no more here, and once told, in the other processes."""
        ended = self.codec.end(session.session_id, session.state)
        if self.share_end is not None:
            self.share_end(ended)

    def open(self, principal: Principal, session_id: str, snapshot: Snapshot) -> ClientSession:
        """Open a sealed session id for this principal (raises SessionNotFound)."""
        state = self.codec.open(session_id, principal.issuer, principal.subject)
        binding = session_binding(session_digest(session_id))
        # A backend a reload removed is no longer part of any session.
        backends = {b.name: b for b in state.backends if b.name in snapshot.backends}
        for name in snapshot.order:
            repaired = self.backends.repaired(binding, name)
            if repaired is not None:
                backends[name] = repaired
        return ClientSession(
            principal,
            session_id,
            state,
            binding,
            backends,
            snapshot,
            input_capabilities=dict(state.client_capabilities or {}),
        )

    async def stateless(self, principal: Principal, snapshot: Snapshot) -> ClientSession:
        """The view of a 2026-07-28 request: this user's pooled upstream sessions.

        The binding (cursors, relayed request ids) is the user's, so a cursor
        from one request is valid in the next request of the same user only.
        """
        backends = await self.pool.sessions(principal, snapshot.order)
        user = json.dumps(["stateless", *principal.user])
        binding = hashlib.sha256(user.encode()).hexdigest()[:32]
        state = SessionState(
            issuer=principal.issuer,
            subject=principal.subject,
            created=self.clock.seconds(),
            protocol_version=LATEST_VERSION,
            backends=tuple(backends.values()),
        )

        def reopened(backend_session: BackendSession) -> None:
            key = (principal.user, backend_session.name)
            self.pool.put(key, backend_session, principal)

        return ClientSession(
            principal, "", state, binding, dict(backends), snapshot, on_reopen=reopened, modern=True
        )
