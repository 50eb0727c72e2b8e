"""The composition root opens the store only when ``state_dir`` is set, and closes it
when the daemon stops; a file it cannot open stops the daemon with its name."""

from __future__ import annotations

import os

from twisted.internet.defer import ensureDeferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig, Config
from aigw.config.model import SessionsConfig
from aigw.service import GatewayService
from aigw.store.api import EX_IOERR, StoreError
from aigw.store.sqlite import FILE_NAME, SQLiteStore


def config(state_dir: str | None) -> Config:
    return Config(
        listen=("tcp:0",),
        public_url="https://gw.example",
        mcp_path="/mcp",
        auth=None,
        backends=(BackendConfig(name="files", url="http://127.0.0.1:9/mcp"),),
        sessions=SessionsConfig(secret=b"s" * 32),
        state_dir=state_dir,
    )


class StoreWiringTests(SynchronousTestCase):
    def test_no_state_dir_no_store(self) -> None:
        service = GatewayService(config(None), MemoryReactorClock(), log_to_stderr=False)
        self.assertIsNone(service.store)

    def test_state_dir_opens_the_store_and_stopping_closes_it(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        service = GatewayService(config(directory), MemoryReactorClock(), log_to_stderr=False)
        store = service.store
        assert isinstance(store, SQLiteStore)
        self.assertTrue(os.path.exists(os.path.join(directory, FILE_NAME)))
        service.startService()
        self.successResultOf(service.stopService())
        self.failureResultOf(ensureDeferred(store.get_pins("files")), StoreError)

    def test_a_store_that_cannot_be_opened_stops_the_daemon(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(directory, FILE_NAME))  # a directory where the file goes
        with self.assertRaises(SystemExit) as caught:
            GatewayService(config(directory), MemoryReactorClock(), log_to_stderr=False)
        self.assertEqual(caught.exception.code, EX_IOERR)
