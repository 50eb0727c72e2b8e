"""The session key file check, on real files in a temporary directory."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from aigw.doctor.sessionkey import KeyFiles, check_session_key, key_files_of


class SessionKeyTests(SynchronousTestCase):
    def key(self, mode: int, size: int = 32) -> str:
        path = os.path.join(self.mktemp())
        with open(path, "wb") as handle:
            handle.write(os.urandom(size))
        os.chmod(path, mode)
        return path

    def test_private(self) -> None:
        found = check_session_key(self.key(0o600), inline=False)
        self.assertEqual(found.verdict, "ok")
        self.assertIn("32 bytes, mode 0600", found.seen)

    def test_other_readable_fails(self) -> None:
        path = self.key(0o644)
        found = check_session_key(path, inline=False)
        self.assertEqual(found.verdict, "FAIL")
        self.assertEqual(found.fix, f"chmod 600 {path}")

    def test_group_readable_warns(self) -> None:
        self.assertEqual(check_session_key(self.key(0o640), inline=False).verdict, "warn")

    def test_short_or_missing(self) -> None:
        self.assertEqual(check_session_key(self.key(0o600, 8), inline=False).verdict, "FAIL")
        self.assertEqual(check_session_key("/nonexistent/key", inline=False).verdict, "FAIL")

    def test_not_set(self) -> None:
        self.assertEqual(check_session_key(None, inline=False).verdict, "warn")
        self.assertEqual(check_session_key(None, inline=True).verdict, "ok")

    def test_key_files_of(self) -> None:
        directory = self.mktemp()
        os.mkdir(directory)
        config = os.path.join(directory, "aigw.yaml")
        with open(config, "w") as handle:
            handle.write(
                "sessions:\n  secret_file: ${KEYS:-keys}/session.key\n"
                "  old_secret_files: [/etc/aigw/old.key]\n"
            )
        here = os.path.abspath(directory)
        self.assertEqual(
            key_files_of(config, {}),
            KeyFiles(os.path.join(here, "keys/session.key"), ("/etc/aigw/old.key",)),
        )
        self.assertEqual(
            key_files_of(config, {"KEYS": "/etc/aigw"}).current, "/etc/aigw/session.key"
        )
        with open(config, "w") as handle:
            handle.write("listen: []\n")
        self.assertEqual(key_files_of(config, {}), KeyFiles())

    def test_old_key_named(self) -> None:
        found = check_session_key(self.key(0o644), inline=False, check="old session key")
        self.assertEqual((found.verdict, found.check), ("FAIL", "old session key"))
