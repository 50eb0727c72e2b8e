"""The store a config asks for: ``<state_dir>/aigw.sqlite3``, sealed under the
``token_store`` key (or one derived from the session key).  Used by the daemon's
composition root (``service.py``) and by the ``aigw tokens``/``aigw tools`` commands.

``store.sqlite`` (and with it ``sqlite3``) is imported only when a config has a
``state_dir``: a gateway without one never loads it (about 1 MiB of RSS,
docs/performance.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aigw.config import Config
from aigw.sealed.sealer import Sealer
from aigw.store.api import StoreError

if TYPE_CHECKING:
    from aigw.store.sqlite import SQLiteStore


def store_path(config: Config) -> str | None:
    """Where the store's file is (None: no ``state_dir``, nothing persists)."""
    if config.state_dir is None:
        return None
    from aigw.store.sqlite import FILE_NAME

    return os.path.join(config.state_dir, FILE_NAME)


def store_sealer(config: Config) -> Sealer:
    """The sealer of the store's secrets: ``token_store.key_file`` (and its old keys), else
    the session keys; either way under the store's own HKDF purpose."""
    from aigw.store.sqlite import MAX_SEALED, SEAL_PURPOSE

    given = config.token_store
    if given.key is not None:
        secret, old = given.key, given.old_keys
    elif config.sessions.secret is not None:
        secret, old = config.sessions.secret, config.sessions.old_secrets
    else:  # the config check refuses this (read.py _check_state)
        raise StoreError("the token store needs token_store.key_file or sessions.secret_file")
    return Sealer(secret, old, SEAL_PURPOSE, max_token_length=MAX_SEALED)


def open_store(config: Config, reactor: Any, *, create: bool = True) -> SQLiteStore | None:
    """The store of ``config``, its schema ready (None without ``state_dir``).

    Opens and migrates the file at once, blocking (at start, before the reactor
    runs); StoreError names the file when that fails (or, ``create`` false, when it
    does not exist).
    """
    path = store_path(config)
    if path is None:
        return None
    from aigw.store.sqlite import SQLiteStore, connection_pool, prepare

    sealer = store_sealer(config)
    prepare(path, create=create)
    return SQLiteStore(connection_pool(path, reactor), sealer)
