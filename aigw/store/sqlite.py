"""The store in one SQLite file (``<state_dir>/aigw.sqlite3``), shared by every aigw
process of the host and by the ``aigw tokens``/``aigw tools`` commands.

Never on the reactor thread: every query runs through ``twisted.enterprise.adbapi``
on one connection in one thread of its own (``cp_min = cp_max = 1``: SQLite allows
one writer at a time anyway, and one connection keeps the order of writes).  The
file is in WAL mode, so readers in other processes do not block this one's writer;
a writer waits for another's up to ``BUSY_TIMEOUT`` (``PRAGMA busy_timeout``).

The schema is created, or migrated to ``SCHEMA_VERSION``, when the store is opened
(``prepare``, synchronous: at start, before the reactor runs), in one transaction
that holds the write lock, so two processes starting together migrate once.

Secrets are sealed at rest (``sealed/sealer.py``, AES-256-GCM under the key the
``token_store`` config gives).  All of a row but its key (the secrets, and what says
where they go: token endpoint, client id) is one sealed payload whose associated data
is the row's key, so a sealed value copied into another row does not open; the
columns in clear are what ``aigw tokens list`` shows.  A row that does not open
(altered, or sealed under another key) is logged and treated as absent:
the user is asked to authorize again, aigw never fails on it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from aigw.sealed.sealer import Sealer, SealError
from aigw.store import pins
from aigw.store.api import RegisteredClient, StoreError, ToolPin, UserToken, UserTokenInfo

T = TypeVar("T")

#: The file in ``state_dir``.
FILE_NAME = "aigw.sqlite3"
#: The schema this code reads and writes; ``MIGRATIONS[n - 1]`` takes a file to version n.
SCHEMA_VERSION = 1
#: Milliseconds a connection waits for another process's write lock.
BUSY_TIMEOUT = 5000
#: The longest sealed value, in characters: two tokens of a few KiB each, with room.
MAX_SEALED = 256 * 1024
#: The sealer's purpose for the store's key (HKDF ``info``): independent of sessions'.
SEAL_PURPOSE = "token-store"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE user_tokens (
            issuer TEXT NOT NULL, subject TEXT NOT NULL, backend TEXT NOT NULL,
            sealed TEXT NOT NULL,
            expires_at REAL, scope TEXT, has_refresh_token INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (issuer, subject, backend))""",
        """CREATE TABLE clients (
            backend TEXT NOT NULL, issuer TEXT NOT NULL, sealed TEXT NOT NULL,
            PRIMARY KEY (backend, issuer))""",
        """CREATE TABLE tool_pins (
            backend TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
            digest TEXT NOT NULL, definition TEXT, first_seen REAL NOT NULL,
            pending_digest TEXT, pending_since REAL, pending_definition TEXT,
            PRIMARY KEY (backend, kind, name))""",
    ),
)

# Pins are read in ToolPin's field order.
_PINS_OF_BACKEND = """SELECT backend, kind, name, digest, first_seen, pending_digest,
    pending_since, pending_definition, definition FROM tool_pins WHERE backend = ?"""
_PENDING_PINS = """SELECT backend, kind, name, digest, first_seen, pending_digest,
    pending_since, pending_definition, definition FROM tool_pins
    WHERE pending_digest IS NOT NULL ORDER BY backend, kind, name"""
_ONE_PIN = """SELECT backend, kind, name, digest, first_seen, pending_digest,
    pending_since, pending_definition, definition FROM tool_pins
    WHERE backend = ? AND kind = ? AND name = ?"""
_WRITE_PIN = """INSERT OR REPLACE INTO tool_pins (backend, kind, name, digest, first_seen,
    pending_digest, pending_since, pending_definition, definition)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""
# Each key given (not NULL) must match.
_REVOKE = """DELETE FROM user_tokens WHERE (?1 IS NULL OR subject = ?1)
    AND (?2 IS NULL OR backend = ?2) AND (?3 IS NULL OR issuer = ?3)"""


class Pool(Protocol):
    """What the store asks of ``adbapi.ConnectionPool``."""

    def runInteraction(self, interaction: Callable[..., T], *args: Any) -> Deferred[T]: ...

    def close(self) -> None: ...


def configure(connection: sqlite3.Connection) -> None:
    """Each connection waits for other processes' writes rather than failing at once."""
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT}")


def prepare(path: str, *, create: bool = True) -> None:
    """Create ``path`` (mode 0600) with the schema, or migrate it; StoreError otherwise.

    ``create`` false: a missing file is an error (the commands, which may run as root,
    leave making the file to the daemon, whose user must own it).
    """
    if not create and not os.path.exists(path):
        raise StoreError(f"{path} does not exist yet: aigw makes it when it starts")
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = sqlite3.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as error:
        raise StoreError(f"cannot open {path}: {error}") from None
    try:
        configure(connection)
        # Persistent in the file: every later connection, of any process, uses WAL.
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = connection.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {current}, newer than this aigw's "
                f"({SCHEMA_VERSION}): a newer aigw wrote it"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                connection.execute(statement)
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        raise StoreError(f"cannot use {path}: {error}") from None
    finally:
        connection.close()


def connection_pool(path: str, reactor: Any) -> Pool:
    """The adbapi pool of the store: one connection, in one thread."""
    from twisted.enterprise import adbapi

    return cast(
        Pool,
        adbapi.ConnectionPool(
            "sqlite3",
            path,
            check_same_thread=False,
            isolation_level=None,  # transactions begin where the code says (BEGIN IMMEDIATE)
            cp_min=1,
            cp_max=1,
            cp_openfun=configure,
            cp_reactor=reactor,
        ),
    )


def _aad(table: str, *key: str) -> bytes:
    """The associated data of a row's sealed payload: its table and key."""
    return json.dumps([table, *key]).encode("utf-8")


class SQLiteStore:
    """``store.api.Store`` over one SQLite file (see the module docstring)."""

    log = Logger()

    def __init__(self, pool: Pool, sealer: Sealer) -> None:
        self._pool = pool
        self._sealer = sealer
        self._closed = False

    def _run(self, interaction: Callable[..., T], *args: Any) -> Deferred[T]:
        if self._closed:
            raise StoreError("the store is closed")
        return self._pool.runInteraction(interaction, *args)

    def _open(self, sealed: str, aad: bytes, what: str) -> dict[str, Any] | None:
        try:
            return self._sealer.open(sealed, aad)
        except SealError as error:
            self.log.warn(
                "token store: {what} does not open ({error}): altered, or sealed under "
                "another key; treated as absent",
                what=what,
                error=error,
            )
            return None

    # -- users' tokens ------------------------------------------------------

    async def get_user_token(self, issuer: str, subject: str, backend: str) -> UserToken | None:
        rows = await self._run(
            _select,
            "SELECT sealed FROM user_tokens WHERE issuer = ? AND subject = ? AND backend = ?",
            (issuer, subject, backend),
        )
        if not rows:
            return None
        what = f"the token of {subject!r} ({issuer}) at {backend}"
        payload = self._open(rows[0][0], _aad("user_tokens", issuer, subject, backend), what)
        if payload is None:
            return None
        try:
            return UserToken(issuer, subject, backend, **payload)
        except TypeError as error:
            self.log.warn("token store: {what} is not a token ({error})", what=what, error=error)
            return None

    async def put_user_token(self, token: UserToken) -> None:
        key = (token.issuer, token.subject, token.backend)
        sealed = self._sealer.seal(_payload(token, 3), _aad("user_tokens", *key))
        await self._run(
            _execute,
            "INSERT OR REPLACE INTO user_tokens (issuer, subject, backend, sealed, expires_at, "
            "scope, has_refresh_token, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *key,
                sealed,
                token.expires_at,
                token.scope,
                token.refresh_token is not None,
                token.updated_at,
            ),
        )

    async def list_user_tokens(self) -> Sequence[UserTokenInfo]:
        rows = await self._run(
            _select,
            "SELECT issuer, subject, backend, expires_at, scope, has_refresh_token, updated_at "
            "FROM user_tokens ORDER BY backend, issuer, subject",
            (),
        )
        return [
            UserTokenInfo(issuer, subject, backend, expires_at, scope, bool(refresh), updated)
            for issuer, subject, backend, expires_at, scope, refresh, updated in rows
        ]

    async def revoke_user_tokens(
        self, *, subject: str | None = None, backend: str | None = None, issuer: str | None = None
    ) -> int:
        """Delete every token matching all the given keys (at least one); how many went."""
        if subject is None and backend is None and issuer is None:
            raise ValueError("revoke_user_tokens needs a subject, backend or issuer")
        return await self._run(_execute, _REVOKE, (subject, backend, issuer))

    # -- registered clients ------------------------------------------------

    async def get_client(self, backend: str, issuer: str) -> RegisteredClient | None:
        rows = await self._run(
            _select,
            "SELECT sealed FROM clients WHERE backend = ? AND issuer = ?",
            (backend, issuer),
        )
        if not rows:
            return None
        what = f"the client of {backend} at {issuer}"
        payload = self._open(rows[0][0], _aad("clients", backend, issuer), what)
        if payload is None:
            return None
        try:
            return RegisteredClient(backend, issuer, **payload)
        except TypeError as error:
            self.log.warn("token store: {what} is not a client ({error})", what=what, error=error)
            return None

    async def put_client(self, client: RegisteredClient) -> None:
        payload = _payload(client, 2)
        sealed = self._sealer.seal(payload, _aad("clients", client.backend, client.issuer))
        await self._run(
            _execute,
            "INSERT OR REPLACE INTO clients (backend, issuer, sealed) VALUES (?, ?, ?)",
            (client.backend, client.issuer, sealed),
        )

    # -- tool pins ---------------------------------------------------------

    async def get_pins(self, backend: str) -> Sequence[ToolPin]:
        rows = await self._run(_select, _PINS_OF_BACKEND, (backend,))
        return [_pin(row) for row in rows]

    async def put_pin(self, pin: ToolPin) -> None:
        await self._run(_write_pin, pin)

    async def list_pending_pins(self) -> Sequence[ToolPin]:
        rows = await self._run(_select, _PENDING_PINS, ())
        return [_pin(row) for row in rows]

    async def record_pin(
        self, backend: str, kind: str, name: str, digest: str, definition: str, now: float
    ) -> ToolPin:
        """What a backend listed now, applied to the stored pin (``pins.observed``) in one
        transaction; the pin as it then is."""

        def record(txn: Any) -> ToolPin:
            txn.execute("BEGIN IMMEDIATE")
            pin = _read_pin(txn, backend, kind, name)
            after = pins.observed(pin, backend, kind, name, digest, definition, now)
            if after != pin:
                _write_pin(txn, after)
            return after

        return await self._run(record)

    async def accept_pin(self, backend: str, kind: str, name: str) -> ToolPin | None:
        """Make the pending digest the pinned one (``pins.accepted``); the pin as it then
        is, or None when nothing was pending."""

        def accept(txn: Any) -> ToolPin | None:
            txn.execute("BEGIN IMMEDIATE")
            pin = _read_pin(txn, backend, kind, name)
            after = None if pin is None else pins.accepted(pin)
            if after is not None:
                _write_pin(txn, after)
            return after

        return await self._run(accept)

    async def close(self) -> None:
        """Close the connection; queries already asked still run first (adbapi's thread
        pool finishes its queue before its thread ends)."""
        if not self._closed:
            self._closed = True
            self._pool.close()


def _payload(row: Any, keys: int) -> dict[str, Any]:
    """What is sealed of a row: every field after its first ``keys`` (the row's key),
    so a field added to the row is kept without a schema change."""
    fields = attrs.fields(type(row))[keys:]
    return {field.name: getattr(row, field.name) for field in fields}


def _select(txn: Any, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    txn.execute(sql, parameters)
    return cast(list[tuple[Any, ...]], txn.fetchall())


def _execute(txn: Any, sql: str, parameters: tuple[Any, ...]) -> int:
    """Run one statement; how many rows it changed."""
    txn.execute(sql, parameters)
    return cast(int, txn.rowcount)


def _stored_name(name: str) -> str | bytes:
    """A pinned item's name as the table holds it.

    A backend's name may hold lone surrogates (``"\\ud800"``: valid JSON text, RFC 8259
    section 8.2, read by ``jsonrpc.loads``), which SQLite's text (UTF-8) cannot: binding
    one raised, so such an item was never pinned and, under ``block``, held for good
    with an error logged at each listing.  Its name is kept as a BLOB of its
    ``surrogatepass`` bytes instead, which no text name equals (SQLite compares a BLOB
    with a BLOB only), so every name has exactly one row."""
    if name.isascii():
        return name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass")
    return name


def _pin(row: tuple[Any, ...]) -> ToolPin:
    """A pin read in ToolPin's field order, its name as the backend wrote it."""
    backend, kind, name, *rest = row
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogatepass")
    return ToolPin(backend, kind, name, *rest)


def _read_pin(txn: Any, backend: str, kind: str, name: str) -> ToolPin | None:
    txn.execute(_ONE_PIN, (backend, kind, _stored_name(name)))
    row = txn.fetchone()
    return None if row is None else _pin(row)


def _write_pin(txn: Any, pin: ToolPin) -> None:
    txn.execute(
        _WRITE_PIN,
        (
            pin.backend,
            pin.kind,
            _stored_name(pin.name),
            pin.digest,
            pin.first_seen,
            pin.pending_digest,
            pin.pending_since,
            pin.pending_definition,
            pin.definition,
        ),
    )
