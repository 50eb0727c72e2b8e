"""The seam of the store: what the gateway and the upstream layer ask of it.

``Store`` is implemented by ``store.sqlite.SQLiteStore`` (``twisted.enterprise.adbapi``,
so the reactor never blocks on the disk, secrets sealed with AES-256-GCM under a key read
from a file) and by an in-memory fake in ``tests/fakes.py``.  Every method is a coroutine;
none raises for a missing row (``None`` or an empty list instead).

Three kinds of rows:

- ``UserToken``: the token a user's own account at a backend's authorization server
  issued to aigw (``backends[].auth.user_oauth``), keyed by the issuer and ``sub`` of the
  user's token at aigw and the backend's name.  ``access_token`` and ``refresh_token``
  are the secrets: sealed at rest, never listed.
- ``RegisteredClient``: the client aigw registered (RFC 7591) with a backend's
  authorization server, keyed by the backend and that server's issuer, so one
  registration serves every user.
- ``ToolPin``: the digest of what a backend said a tool (or prompt) is, the first time
  aigw saw it, and the digest of a later, different answer waiting for an operator
  (``aigw tools changes``, ``aigw tools accept NAME``).  ``record_pin`` and
  ``accept_pin`` change a pin in one transaction, so several aigw processes sharing
  the store (and the operator's command) never undo each other's changes; both follow
  ``store.pins.observed`` and ``store.pins.accepted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

#: sysexits.h: how the daemon and the commands exit when the store cannot be opened.
EX_IOERR = 74


class StoreError(Exception):
    """The store's file cannot be opened or migrated (the message names the file)."""


@attrs.frozen
class UserToken:
    """One user's token at one backend (the secrets are ``access_token``/``refresh_token``)."""

    issuer: str
    subject: str
    backend: str
    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(repr=False, default=None)
    #: Seconds since the epoch; None: the authorization server gave no lifetime.
    expires_at: float | None = None
    scope: str | None = None
    #: Where the token is refreshed, and as which client.
    token_endpoint: str = ""
    client_id: str = ""
    updated_at: float = 0.0


@attrs.frozen
class UserTokenInfo:
    """A stored token as listed: who, where, until when; no secret."""

    issuer: str
    subject: str
    backend: str
    expires_at: float | None
    scope: str | None
    has_refresh_token: bool
    updated_at: float


@attrs.frozen
class RegisteredClient:
    """A client aigw registered with (or was configured for) a backend's authorization server."""

    backend: str
    issuer: str
    client_id: str
    client_secret: str | None = attrs.field(repr=False, default=None)
    #: Seconds since the epoch; None or 0: the secret does not expire (RFC 7591 §3.2.1).
    client_secret_expires_at: float | None = None
    registered_at: float = 0.0


@attrs.frozen
class ToolPin:
    """What aigw pinned for one tool or prompt of one backend.

    ``kind`` is ``"tool"`` or ``"prompt"``; ``name`` is the backend's own name (not the
    prefixed one).  ``digest`` is the accepted digest; ``pending_digest`` a different one
    seen later and not yet accepted (None: nothing changed), with ``pending_since``.
    """

    backend: str
    kind: str
    name: str
    digest: str
    first_seen: float
    pending_digest: str | None = None
    pending_since: float | None = None
    #: The definition (JSON text) behind ``pending_digest``, for the operator to read.
    pending_definition: str | None = None
    #: The definition (JSON text) behind ``digest``: what a change is shown against.
    definition: str | None = None


class Store(Protocol):
    """The persistent state of aigw (see the module docstring)."""

    async def get_user_token(self, issuer: str, subject: str, backend: str) -> UserToken | None: ...

    async def put_user_token(self, token: UserToken) -> None: ...

    async def list_user_tokens(self) -> Sequence[UserTokenInfo]: ...

    async def revoke_user_tokens(
        self, *, subject: str | None = None, backend: str | None = None, issuer: str | None = None
    ) -> int:
        """Delete every token matching all the given keys (at least one); how many went."""
        ...

    async def get_client(self, backend: str, issuer: str) -> RegisteredClient | None: ...

    async def put_client(self, client: RegisteredClient) -> None: ...

    async def get_pins(self, backend: str) -> Sequence[ToolPin]: ...

    async def put_pin(self, pin: ToolPin) -> None: ...

    async def list_pending_pins(self) -> Sequence[ToolPin]: ...

    async def record_pin(
        self, backend: str, kind: str, name: str, digest: str, definition: str, now: float
    ) -> ToolPin:
        """What a backend listed now, applied to the stored pin (``pins.observed``) in one
        transaction; the pin as it then is."""
        ...

    async def accept_pin(self, backend: str, kind: str, name: str) -> ToolPin | None:
        """Make the pending digest the pinned one (``pins.accepted``); the pin as it then
        is, or None when nothing was pending."""
        ...

    async def close(self) -> None: ...
