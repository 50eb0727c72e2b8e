"""The SQLite store without threads: ``InlinePool`` runs each interaction at once, on the
test's thread, over a real sqlite3 connection, committing or rolling back as
``adbapi.ConnectionPool.runInteraction`` does, so the store's real SQL runs in memory
tests (the real pool is tested in tests/unit/store/test_sqlite.py on the reactor)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed

from aigw.sealed.sealer import Sealer
from aigw.store.sqlite import FILE_NAME, MAX_SEALED, SEAL_PURPOSE, SQLiteStore, configure, prepare

T = TypeVar("T")

KEY = b"k" * 32


class InlinePool:
    """``adbapi.ConnectionPool``'s ``runInteraction`` and ``close``, run synchronously."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        configure(self.connection)
        self.closed = False

    def runInteraction(self, interaction: Callable[..., T], *args: Any) -> Deferred[T]:
        cursor = self.connection.cursor()
        try:
            result = interaction(cursor, *args)
            self.connection.commit()
        except Exception:
            self.connection.rollback()
            return fail()
        return succeed(result)

    def close(self) -> None:
        self.connection.close()
        self.closed = True


def sealer(key: bytes = KEY) -> Sealer:
    return Sealer(key, purpose=SEAL_PURPOSE, max_token_length=MAX_SEALED)


def inline_store(directory: str, key: bytes = KEY) -> tuple[SQLiteStore, InlinePool]:
    """A store over ``<directory>/aigw.sqlite3`` (created and migrated), and its pool."""
    path = os.path.join(directory, FILE_NAME)
    prepare(path)
    pool = InlinePool(path)
    return SQLiteStore(pool, sealer(key)), pool
