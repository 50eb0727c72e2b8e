"""The real daemon under a stand-in for systemd: sd_notify(3) messages over NOTIFY_SOCKET.

A bound AF_UNIX datagram socket plays systemd's notify socket; the daemon is
``twistd -n aigw`` with ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` set, as
``Type=notify`` and ``WatchdogSec=`` would start it (systemd.service(5)).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable

from twisted.trial.unittest import TestCase

from tests.process.helpers import BIN, free_port, write_config

Message = dict[str, str]


def parse(data: bytes) -> Message:
    return dict(line.partition("=")[::2] for line in data.decode("utf-8").split("\n"))


class NotifyTests(TestCase):
    def setUp(self) -> None:
        # A short directory: AF_UNIX paths hold at most 107 bytes.
        self.directory = tempfile.mkdtemp(prefix="aigw-notify-")
        self.addCleanup(shutil.rmtree, self.directory)
        self.path = os.path.join(self.directory, "notify")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.socket.close)
        self.socket.bind(self.path)
        self.messages: list[Message] = []

    def wait_for(
        self, what: str, found: Callable[[Message], bool], process: subprocess.Popen[bytes]
    ) -> Message:
        """The next message ``found`` accepts, within a deadline; the others are kept too."""
        deadline = time.monotonic() + 20
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(min(left, 0.5))
            try:
                message = parse(self.socket.recv(4096))
            except TimeoutError:
                # Only once the queue is empty: what it sent before exiting still counts.
                if process.poll() is not None:
                    raise AssertionError(
                        f"daemon exited with {process.returncode} before {what}; "
                        f"received {self.messages}"
                    ) from None
                continue
            self.messages.append(message)
            if found(message):
                return message
        raise AssertionError(f"no {what} within 20 s; received {self.messages}")

    def test_ready_watchdog_reload_stopping_in_order(self) -> None:
        port = free_port()
        config = write_config(self.directory, port)
        env = dict(os.environ, NOTIFY_SOCKET=self.path, WATCHDOG_USEC="200000")
        with open(os.path.join(self.directory, "out.log"), "wb") as out:
            process = subprocess.Popen(
                [str(BIN / "twistd"), "-n", "--pidfile=", "aigw", "--config", config],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.directory,
            )
        self.addCleanup(process.wait)
        self.addCleanup(lambda: process.poll() is None and process.kill())

        ready = self.wait_for("READY=1", lambda m: m.get("READY") == "1", process)
        self.assertEqual(ready["STATUS"], f"serving on tcp:{port}:interface=127.0.0.1")
        self.wait_for("WATCHDOG=1", lambda m: m.get("WATCHDOG") == "1", process)

        process.send_signal(signal.SIGHUP)
        reloading = self.wait_for("RELOADING=1", lambda m: m.get("RELOADING") == "1", process)
        self.assertGreater(int(reloading["MONOTONIC_USEC"]), 0)
        self.wait_for("READY=1 after reload", lambda m: m.get("READY") == "1", process)
        self.wait_for("WATCHDOG=1 after reload", lambda m: m.get("WATCHDOG") == "1", process)
        self.assertIsNone(process.poll(), "SIGHUP must not end the daemon")

        process.send_signal(signal.SIGTERM)
        stopping = self.wait_for("STOPPING=1", lambda m: m.get("STOPPING") == "1", process)
        self.assertTrue(stopping["STATUS"].startswith("stopping"), stopping)
        self.assertEqual(process.wait(20), 0)

        states = [
            name for m in self.messages for name in ("READY", "RELOADING", "STOPPING") if name in m
        ]
        self.assertEqual(states, ["READY", "RELOADING", "READY", "STOPPING"])
        self.assertEqual(self.messages[0], {"STATUS": "starting"})
        with open(os.path.join(self.directory, "out.log")) as log:
            output = log.read()
        self.assertIn("backends added none, removed none, changed none", output)
        self.assertNotIn("Traceback", output)
