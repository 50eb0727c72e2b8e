"""The two sealed values of a user's authorization at a backend: the link, and the state.

The link is the URL handed to the user in the URL elicitation (MCP 2025-11-25
client/elicitation, "URL Elicitation Required Error"): aigw's own start endpoint with
a token sealed for purpose ``user-oauth-link`` that names the user (issuer and
``sub`` of their token at aigw), the backend, an ``elicitationId`` and an expiry, so
it cannot be forged or pointed at another user or backend ("Phishing": the URL MUST
resist modification).  The state is the OAuth ``state`` (RFC 6749 §10.12), sealed for
``user-oauth-state``: the same user, backend and id, the PKCE verifier (RFC 7636 §4.1:
secret, so sealed, never in clear on the wire) and the client it was begun with.

Single use.  Both carry the elicitation id; each process remembers the ids it has
begun and completed (bounded, until their expiry), so a link or a state replayed to
the same process is refused.  Across processes the state is single-use anyway: the
authorization server redeems each code once (RFC 6749 §4.1.2), so a replayed callback
fails at the token endpoint.  A link replayed to another process within its short
life only begins a second authorization for the same user and backend.  Nothing here
needs the store: links and states work across processes that share the sessions key.

The link and its states also name the aigw process that minted the link (the one that
answered the -32042, which remembers the session that got it) and where its peers
reach it (``sessions.peer_url``), so that the process serving the callback can have
that session told (``web/elicitation_notices.py``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import attrs

from aigw.httpjson import Clock
from aigw.lru import LRU
from aigw.principal import Principal
from aigw.sealed.sealer import Sealer, SealError

START_PATH = "/oauth/upstream/start"
CALLBACK_PATH = "/oauth/upstream/callback"
#: Where aigw's own authorization server sends the browser back after its login.
LOGIN_PATH = "/oauth/upstream/login"
#: How long a state lives: the user's login at the backend's authorization server.
STATE_TTL = 600.0
#: Ids remembered as used, per kind, in this process.
USED_MAX = 65536


class LinkRefused(Exception):
    """A link or state that does not open, has expired, or was used: HTTP 400.

    ``reason`` is ``invalid``, ``expired`` or ``replayed``; ``str()`` says it for people.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@attrs.frozen
class Grant:
    """Whose authorization at which backend a link or state is for."""

    issuer: str
    subject: str
    backend: str
    elicitation_id: str
    #: The process that minted the link, and its ``sessions.peer_url`` (None: unknown).
    process: str | None = None
    peer_url: str | None = None


@attrs.frozen
class LoginState:
    """An opened login state: the grant, and what the ID token must match."""

    grant: Grant
    verifier: str = attrs.field(repr=False)
    nonce: str = attrs.field(repr=False)
    client_id: str


@attrs.frozen
class State:
    """An opened state: the grant, the PKCE verifier and the client it was begun with."""

    grant: Grant
    verifier: str = attrs.field(repr=False)
    client_id: str
    authorization_server: str


def pkce_pair() -> tuple[str, str]:
    """RFC 7636 §4.1-4.2: a verifier of 64 characters, and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class UserLinks:
    """Mints links, opens them, seals and opens states; remembers used ids."""

    def __init__(
        self,
        sealer: Sealer,
        public_url: str,
        clock: Clock,
        here: Callable[[], tuple[str, str | None]] | None = None,
    ) -> None:
        """``here``: this process's name and ``sessions.peer_url``, asked at each mint
        (a reload may change the URL), written into the links."""
        self._here = here
        self._links = sealer.for_purpose("user-oauth-link")
        self._states = sealer.for_purpose("user-oauth-state")
        self._base = public_url.rstrip("/")
        self._clock = clock
        self._logins = sealer.for_purpose("user-oauth-login")
        self._used: dict[str, LRU[str, float]] = {
            kind: LRU(USED_MAX) for kind in ("link", "login", "state")
        }

    @property
    def redirect_uri(self) -> str:
        """Where the backend's authorization server sends the user back (RFC 6749 §3.1.2)."""
        return self._base + CALLBACK_PATH

    @property
    def login_redirect_uri(self) -> str:
        """Where aigw's own authorization server sends the browser back after its login."""
        return self._base + LOGIN_PATH

    def mint(self, principal: Principal, backend: str, ttl: float) -> tuple[str, str]:
        """A new elicitation id and the start URL bound to it, the user and the backend."""
        elicitation_id = str(uuid.uuid4())
        process, peer_url = self._here() if self._here is not None else (None, None)
        token = self._links.seal(
            {
                "i": principal.issuer,
                "s": principal.subject,
                "b": backend,
                "n": elicitation_id,
                "x": self._clock.seconds() + ttl,
                "p": process,
                "u": peer_url,
            }
        )
        return elicitation_id, f"{self._base}{START_PATH}?{urlencode({'link': token})}"

    def open_link(self, token: object) -> Grant:
        """The grant of a link minted here (or by a process sharing the key), once."""
        payload = self._open(self._links, token, "link")
        return self._use("link", payload)

    def seal_login(self, grant: Grant, verifier: str, nonce: str, client_id: str) -> str:
        """The ``state`` of the sign-in at aigw's own authorization server."""
        return self._seal(self._logins, grant, v=verifier, o=nonce, c=client_id)

    def open_login(self, token: object) -> LoginState:
        """The state of a sign-in callback, once."""
        grant, (verifier, nonce, client_id) = self._open_with(self._logins, token, "login", "voc")
        return LoginState(grant, verifier, nonce, client_id)

    def seal_state(self, grant: Grant, verifier: str, client_id: str, server: str) -> str:
        return self._seal(self._states, grant, v=verifier, c=client_id, a=server)

    def open_state(self, token: object) -> State:
        """The state of a callback, once."""
        grant, (verifier, client_id, server) = self._open_with(self._states, token, "state", "vca")
        return State(grant, verifier, client_id, server)

    def _seal(self, sealer: Sealer, grant: Grant, **extra: str) -> str:
        return sealer.seal(
            {
                "i": grant.issuer,
                "s": grant.subject,
                "b": grant.backend,
                "n": grant.elicitation_id,
                "x": self._clock.seconds() + STATE_TTL,
                "p": grant.process,
                "u": grant.peer_url,
                **extra,
            }
        )

    def _open_with(
        self, sealer: Sealer, token: object, kind: str, keys: str
    ) -> tuple[Grant, list[str]]:
        """The grant of a state, once, and its string fields named by ``keys``."""
        payload = self._open(sealer, token, kind)
        values = [payload.get(key) for key in keys]
        if not all(isinstance(value, str) for value in values):
            raise LinkRefused("invalid", f"malformed {kind}")
        return self._use(kind, payload), [str(value) for value in values]

    def _open(self, sealer: Sealer, token: object, kind: str) -> dict[str, Any]:
        try:
            payload = sealer.open(token)
        except SealError:
            raise LinkRefused("invalid", f"not a {kind} issued by this gateway") from None
        expires = payload.get("x")
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise LinkRefused("invalid", f"malformed {kind}")
        if expires < self._clock.seconds():
            raise LinkRefused("expired", f"this {kind} has expired: start again from your client")
        return payload

    def _use(self, kind: str, payload: dict[str, Any]) -> Grant:
        fields = [payload.get(key) for key in ("i", "s", "b", "n")]
        origin = [payload.get(key) for key in ("p", "u")]
        if not all(isinstance(value, str) for value in fields) or not all(
            value is None or isinstance(value, str) for value in origin
        ):
            raise LinkRefused("invalid", f"malformed {kind}")
        issuer, subject, backend, elicitation_id = (str(value) for value in fields)
        used = self._used[kind]
        now = self._clock.seconds()
        seen = used.get(elicitation_id)
        if seen is not None and seen >= now:
            raise LinkRefused("replayed", f"this {kind} was used already: start again")
        used.put(elicitation_id, float(payload["x"]))
        return Grant(issuer, subject, backend, elicitation_id, origin[0], origin[1])
