"""The SQLite store: rows, sealing at rest, pins, the schema, the real adbapi pool."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from aigw.store.api import RegisteredClient, StoreError, ToolPin, UserToken, UserTokenInfo
from aigw.store.sqlite import FILE_NAME, SCHEMA_VERSION, SQLiteStore, prepare
from tests.unit.store.helpers import inline_store, sealer

T = TypeVar("T")

TOKEN = UserToken(
    "https://idp.example",
    "alice",
    "crm",
    access_token="access-secret-A",
    refresh_token="refresh-secret-R",
    expires_at=1_900_000_000.0,
    scope="crm:read",
    token_endpoint="https://crm-as.example/token",
    client_id="aigw-client",
    updated_at=1_800_000_000.0,
)


class StoreTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, FILE_NAME)
        self.store, self.pool = inline_store(self.directory)
        self.addCleanup(self.pool.close)

    def run_(self, work: Coroutine[Any, Any, T]) -> T:
        return self.successResultOf(ensureDeferred(work))

    def logged(self) -> list[LogEvent]:
        events: list[LogEvent] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def sql(self, statement: str, *parameters: Any) -> list[tuple[Any, ...]]:
        return self.pool.connection.execute(statement, parameters).fetchall()


class UserTokenTests(StoreTestCase):
    def test_a_token_comes_back_as_it_was_put(self) -> None:
        self.run_(self.store.put_user_token(TOKEN))
        self.assertEqual(self.run_(self.store.get_user_token(*_key(TOKEN))), TOKEN)

    def test_a_missing_token_is_none(self) -> None:
        self.assertIsNone(self.run_(self.store.get_user_token("i", "s", "b")))

    def test_put_replaces_the_users_token_at_that_backend(self) -> None:
        self.run_(self.store.put_user_token(TOKEN))
        newer = UserToken(TOKEN.issuer, TOKEN.subject, TOKEN.backend, access_token="second")
        self.run_(self.store.put_user_token(newer))
        self.assertEqual(self.run_(self.store.get_user_token(*_key(TOKEN))), newer)
        self.assertEqual(len(self.run_(self.store.list_user_tokens())), 1)

    def test_the_list_says_who_where_and_until_when_and_no_secret(self) -> None:
        self.run_(self.store.put_user_token(TOKEN))
        [info] = self.run_(self.store.list_user_tokens())
        self.assertEqual(
            info,
            UserTokenInfo(
                "https://idp.example",
                "alice",
                "crm",
                1_900_000_000.0,
                "crm:read",
                has_refresh_token=True,
                updated_at=1_800_000_000.0,
            ),
        )

    def test_revoke_deletes_what_matches_every_key_given(self) -> None:
        for subject, backend in [("alice", "crm"), ("alice", "wiki"), ("bob", "crm")]:
            token = UserToken("https://idp.example", subject, backend, access_token="t")
            self.run_(self.store.put_user_token(token))
        revoked = self.run_(self.store.revoke_user_tokens(subject="alice", backend="crm"))
        self.assertEqual(revoked, 1)
        self.assertEqual(self.run_(self.store.revoke_user_tokens(backend="nowhere")), 0)
        self.assertEqual(self.run_(self.store.revoke_user_tokens(subject="alice")), 1)
        left = self.run_(self.store.list_user_tokens())
        self.assertEqual([(t.subject, t.backend) for t in left], [("bob", "crm")])

    def test_revoke_without_a_key_is_refused(self) -> None:
        failure = self.failureResultOf(ensureDeferred(self.store.revoke_user_tokens()))
        failure.trap(ValueError)


class SealingTests(StoreTestCase):
    def test_no_secret_is_in_the_file_in_clear(self) -> None:
        self.run_(self.store.put_user_token(TOKEN))
        self.run_(self.store.put_client(RegisteredClient("crm", "https://as", "id", "client-pw")))
        self.pool.connection.execute("PRAGMA wal_checkpoint(FULL)")
        data = b"".join(
            Path(self.path + suffix).read_bytes()
            for suffix in ("", "-wal")
            if os.path.exists(self.path + suffix)
        )
        for secret in (b"access-secret-A", b"refresh-secret-R", b"client-pw", b"crm-as.example"):
            self.assertNotIn(secret, data)

    def test_an_altered_row_is_absent_and_logged(self) -> None:
        self.run_(self.store.put_user_token(TOKEN))
        [(sealed,)] = self.sql("SELECT sealed FROM user_tokens")
        altered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
        self.sql("UPDATE user_tokens SET sealed = ?", altered)
        events = self.logged()
        self.assertIsNone(self.run_(self.store.get_user_token(*_key(TOKEN))))
        [event] = [e for e in events if "does not open" in e.get("log_format", "")]
        self.assertIn("alice", event["what"])

    def test_a_sealed_value_moved_to_another_row_does_not_open(self) -> None:
        self.run_(self.store.put_user_token(TOKEN))
        self.sql("UPDATE user_tokens SET subject = 'mallory'")
        self.logged()
        self.assertIsNone(self.run_(self.store.get_user_token(TOKEN.issuer, "mallory", "crm")))

    def test_a_row_sealed_under_another_key_is_absent(self) -> None:
        self.run_(self.store.put_user_token(TOKEN))
        other = SQLiteStore(self.pool, sealer(b"o" * 32))
        self.logged()
        self.assertIsNone(self.run_(other.get_user_token(*_key(TOKEN))))

    def test_garbage_in_the_sealed_column_is_absent(self) -> None:
        self.run_(self.store.put_client(RegisteredClient("crm", "https://as", "id", "pw")))
        self.sql("UPDATE clients SET sealed = 'not a sealed value'")
        self.logged()
        self.assertIsNone(self.run_(self.store.get_client("crm", "https://as")))


class ClientTests(StoreTestCase):
    def test_a_client_comes_back_as_it_was_put(self) -> None:
        client = RegisteredClient("crm", "https://as", "id", "pw", 0.0, 1_800_000_000.0)
        self.run_(self.store.put_client(client))
        self.assertEqual(self.run_(self.store.get_client("crm", "https://as")), client)
        self.assertIsNone(self.run_(self.store.get_client("crm", "https://other")))


class PinTests(StoreTestCase):
    def record(self, digest: str, now: float = 1.0) -> ToolPin:
        return self.run_(self.store.record_pin("py", "tool", "echo", digest, f"def {digest}", now))

    def test_first_sight_pins(self) -> None:
        self.assertEqual(
            self.record("d1"), ToolPin("py", "tool", "echo", "d1", 1.0, definition="def d1")
        )
        self.assertEqual(self.run_(self.store.list_pending_pins()), [])

    def test_a_change_waits_and_is_listed(self) -> None:
        self.record("d1")
        pin = self.record("d2", now=5.0)
        self.assertEqual((pin.digest, pin.pending_digest, pin.pending_since), ("d1", "d2", 5.0))
        self.assertEqual(self.record("d2", now=9.0).pending_since, 5.0)
        self.assertEqual(self.run_(self.store.list_pending_pins()), [pin])

    def test_going_back_clears_the_change(self) -> None:
        self.record("d1")
        self.record("d2")
        self.assertIsNone(self.record("d1").pending_digest)

    def test_accept_pins_the_pending_digest(self) -> None:
        self.record("d1")
        self.record("d2")
        accepted = self.run_(self.store.accept_pin("py", "tool", "echo"))
        assert accepted is not None
        self.assertEqual((accepted.digest, accepted.definition), ("d2", "def d2"))
        self.assertIsNone(accepted.pending_digest)
        self.assertEqual(self.run_(self.store.get_pins("py")), [accepted])

    def test_accept_with_nothing_pending_is_none(self) -> None:
        self.assertIsNone(self.run_(self.store.accept_pin("py", "tool", "echo")))
        self.record("d1")
        self.assertIsNone(self.run_(self.store.accept_pin("py", "tool", "echo")))

    def test_put_pin_writes_the_row(self) -> None:
        pin = ToolPin("py", "prompt", "greet", "d", 2.0, "e", 3.0, "new", "old")
        self.run_(self.store.put_pin(pin))
        self.assertEqual(self.run_(self.store.get_pins("py")), [pin])


class SchemaTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, FILE_NAME)

    def test_the_file_is_made_private_in_wal_mode_at_the_current_version(self) -> None:
        prepare(self.path)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        with sqlite3.connect(self.path) as connection:
            self.assertEqual(connection.execute("PRAGMA journal_mode").fetchone()[0], "wal")
            versions = connection.execute("SELECT version FROM schema_version").fetchall()
        self.assertEqual(versions, [(SCHEMA_VERSION,)])

    def test_opening_again_keeps_the_rows(self) -> None:
        store, pool = inline_store(self.directory)
        self.successResultOf(ensureDeferred(store.put_user_token(TOKEN)))
        pool.close()
        store, pool = inline_store(self.directory)
        self.addCleanup(pool.close)
        self.assertEqual(
            self.successResultOf(ensureDeferred(store.get_user_token(*_key(TOKEN)))), TOKEN
        )

    def test_a_newer_schema_is_refused_by_name(self) -> None:
        prepare(self.path)
        with sqlite3.connect(self.path) as connection:
            connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
        with self.assertRaises(StoreError) as caught:
            prepare(self.path)
        self.assertIn(self.path, str(caught.exception))
        self.assertIn("newer", str(caught.exception))

    def test_a_file_that_is_no_database_is_refused_by_name(self) -> None:
        with open(self.path, "wb") as handle:
            handle.write(b"not sqlite" * 100)
        with self.assertRaises(StoreError) as caught:
            prepare(self.path)
        self.assertIn(self.path, str(caught.exception))

    def test_the_commands_do_not_make_the_file(self) -> None:
        with self.assertRaises(StoreError) as caught:
            prepare(self.path, create=False)
        self.assertIn("does not exist yet", str(caught.exception))
        self.assertFalse(os.path.exists(self.path))

    def test_an_unwritable_place_is_refused_by_name(self) -> None:
        path = os.path.join(self.directory, "missing", FILE_NAME)
        with self.assertRaises(StoreError) as caught:
            prepare(path)
        self.assertIn(path, str(caught.exception))


class ThreadedPoolTests(TestCase):
    """The real ``adbapi`` pool, on the reactor (trial spins it): queries run in the
    pool's thread, two stores on one file (two processes) see each other's writes."""

    def test_two_stores_share_the_file(self) -> Deferred[None]:
        return ensureDeferred(self.share())

    async def share(self) -> None:
        from twisted.internet import reactor

        from aigw.store.sqlite import connection_pool

        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, FILE_NAME)
        prepare(path)
        first = SQLiteStore(connection_pool(path, reactor), sealer())
        second = SQLiteStore(connection_pool(path, reactor), sealer())
        try:
            await first.put_user_token(TOKEN)
            self.assertEqual(await second.get_user_token(*_key(TOKEN)), TOKEN)
            await second.record_pin("py", "tool", "echo", "d1", "{}", 1.0)
            pin = await first.record_pin("py", "tool", "echo", "d2", "{}", 2.0)
            self.assertEqual((pin.digest, pin.pending_digest), ("d1", "d2"))
        finally:
            await first.close()
            await second.close()
        with self.assertRaises(StoreError):
            await first.get_pins("py")


def _key(token: UserToken) -> tuple[str, str, str]:
    return token.issuer, token.subject, token.backend
