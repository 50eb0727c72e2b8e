"""Sealed MCP sessions: everything a process needs to serve a session, inside its id.

The ``Mcp-Session-Id`` aigw issues (MCP 2025-11-25 basic/transports "Session
Management") is the sealed state of the session: the user it belongs to
(issuer and subject of the access token), when it was created, the protocol
version negotiated with the client, what the client can answer (sampling,
elicitation, roots: so that any process can relay a backend's request, ask it on a
2026-07-28 backend's behalf, ``gateway/asking.py``, or tell a late-joining backend),
and each backend's upstream session id, version and capabilities.  Any aigw process
holding the key can serve any
request, and nothing is stored.

The user is bound twice: inside the payload, and as AES-GCM associated data.
A session id presented with another user's token therefore does not even
decrypt, so a leaked id is useless without the matching token; the server
answers 404 and the client starts a new session ("Session Management" §3-§4).

Payload keys are one letter, and each backend is a 4-item array, to keep ids
short: they travel in a header on every request.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from aigw.lru import LRU
from aigw.sealed.sealer import Sealer, SealError

FORMAT = 1
#: Session ids opened recently, kept decoded: a client sends its id on every request.
OPENED_MAX = 1024
#: Session ids ended with DELETE and not expired yet, remembered so they open no more.
ENDED_MAX = 65536


class Clock(Protocol):
    """What a Twisted reactor (IReactorTime) or task.Clock offers."""

    def seconds(self) -> float: ...


class SessionNotFound(Exception):
    """The id opens no session of this user: answer HTTP 404.

    ``reason`` (for logs only): ``invalid`` (not a session id of ours, or bound
    to another user), ``malformed``, ``expired``, ``ended`` or ``other_user``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class BackendSession:
    """One backend's side of a client session."""

    name: str
    session_id: str | None
    protocol_version: str
    capabilities: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class SessionState:
    """What a client session is: whose, since when, which version, which upstream sessions."""

    issuer: str
    subject: str
    created: float
    protocol_version: str
    backends: tuple[BackendSession, ...]
    #: What the client declared it can answer (sampling, elicitation, roots; see
    #: ``protocol/client_capabilities.py``): any process relaying a backend's request,
    #: or opening an upstream session later (a late joiner, a repair), knows it.  None:
    #: not known (an id issued before aigw sealed it, or a 2026-07-28 client's view).
    client_capabilities: dict[str, Any] | None = attrs.field(default=None, hash=False)


def _user(issuer: str, subject: str) -> bytes:
    """The associated data binding a session to its user (JSON: unambiguous, ASCII)."""
    return json.dumps([issuer, subject]).encode("ascii")


@attrs.frozen
class Ended:
    """A session id ended with DELETE, as other processes learn of it: its SHA-256, and
    when it expires anyway (this process's clock)."""

    digest: bytes
    expires: float


def session_digest(session_id: str) -> bytes:
    """The SHA-256 other processes know a session id by (never the id, a credential)."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).digest()


def session_binding(digest: bytes) -> str:
    """What binds a session's cursors, relayed request ids and upstream streams to it,
    from its ``session_digest``: so a process told only the digest (another process's
    note) finds the session's upstream streams (``Feeds.opened_elsewhere``)."""
    return digest.hex()[:32]


def _backend(item: Any) -> BackendSession:
    name, session_id, version, capabilities = item  # ValueError/TypeError if not 4 items
    if (
        not isinstance(name, str)
        or not (session_id is None or isinstance(session_id, str))
        or not isinstance(version, str)
        or not isinstance(capabilities, dict)
    ):
        raise TypeError("malformed backend session")
    return BackendSession(name, session_id, version, capabilities)


class SessionCodec:
    """Issue and open sealed session ids (purpose ``session`` of the sealer's secrets)."""

    __slots__ = ("_ended", "_now", "_opened", "_sealer", "ttl")

    def __init__(self, sealer: Sealer, now: Callable[[], float] | Clock, ttl: float) -> None:
        """``now`` is a clock (``reactor``) or a callable (``reactor.seconds``); ``ttl`` seconds."""
        self._sealer = sealer.for_purpose("session")
        self._now: Callable[[], float] = now if callable(now) else now.seconds
        self.ttl = ttl
        # Opening is deterministic (the same id and user give the same state), so
        # only expiry is checked again on a hit; keyed by the user as well as the id.
        self._opened: LRU[tuple[str, str, str], SessionState] = LRU(OPENED_MAX)
        # Ended ids (their SHA-256: an id holds every backend's capabilities, it can be
        # long), with when they expire anyway (then they need not be remembered).
        self._ended: LRU[bytes, float] = LRU(ENDED_MAX)

    def issue(self, state: SessionState) -> str:
        """The session id for ``state``: visible ASCII, opens only for the same user."""
        payload = {
            "f": FORMAT,
            "i": state.issuer,
            "s": state.subject,
            "c": state.created,
            "v": state.protocol_version,
            "b": [
                [b.name, b.session_id, b.protocol_version, b.capabilities] for b in state.backends
            ],
        }
        if state.client_capabilities is not None:
            payload["k"] = state.client_capabilities
        return self._sealer.seal(payload, _user(state.issuer, state.subject))

    def end(self, session_id: str, state: SessionState) -> Ended:
        """The session is terminated (DELETE): its id opens no more.

        basic/transports "Session Management": once the server has terminated a
        session, it MUST answer requests carrying its id with 404.  A sealed id
        would open for ever (until its ttl), so ended ids are remembered until they
        expire, at most ENDED_MAX of them: beyond that the oldest are forgotten.
        What is returned is what other processes need to remember it too
        (``ended_elsewhere``; ``gateway/ended_sessions.py`` carries it).
        """
        ended = Ended(session_digest(session_id), state.created + self.ttl)
        self._ended.put(ended.digest, ended.expires)
        self._opened.pop((session_id, state.issuer, state.subject))
        return ended

    def ended_elsewhere(self, digest: bytes, expires: float) -> None:
        """Another process ended the session whose id has this SHA-256: it opens no more
        here either, until ``expires``, which is never later than a session this
        process would issue now (heard from outside, so bounded by our own ttl)."""
        now = self._now()
        if len(digest) == hashlib.sha256().digest_size and expires > now:
            self._ended.put(digest, min(expires, now + self.ttl))

    def open(self, session_id: str, issuer: str, subject: str) -> SessionState:
        """The state sealed in ``session_id`` for this user; SessionNotFound otherwise."""
        ended = self._ended.get(session_digest(session_id)) if self._ended else None
        if ended is not None:
            if ended >= self._now():
                raise SessionNotFound("ended")
            self._ended.pop(session_digest(session_id))  # expired: the ttl check below answers
        key = (session_id, issuer, subject)
        state = self._opened.get(key)
        if state is None:
            state = self._unseal(session_id, issuer, subject)
            self._opened.put(key, state)
        if state.created + self.ttl < self._now():
            self._opened.pop(key)
            raise SessionNotFound("expired")
        return state

    def _unseal(self, session_id: str, issuer: str, subject: str) -> SessionState:
        try:
            payload = self._sealer.open(session_id, _user(issuer, subject))
        except SealError:
            raise SessionNotFound("invalid") from None
        try:
            if payload["f"] != FORMAT:
                raise ValueError("unknown session format")
            created = payload["c"]
            version = payload["v"]
            if (
                not isinstance(created, int | float)
                or isinstance(created, bool)
                or not math.isfinite(created)
                or not isinstance(version, str)
            ):
                raise TypeError("malformed session")
            backends = tuple(_backend(item) for item in payload["b"])
            client_capabilities = payload.get("k")
            if client_capabilities is not None and not isinstance(client_capabilities, dict):
                raise TypeError("malformed client capabilities")
            sealed_user = (payload["i"], payload["s"])
        except (KeyError, TypeError, ValueError):
            raise SessionNotFound("malformed") from None
        if sealed_user != (issuer, subject):
            raise SessionNotFound("other_user")
        return SessionState(issuer, subject, float(created), version, backends, client_capabilities)
