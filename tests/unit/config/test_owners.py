"""What the config checks agrees with the module that relies on it.

A value the config accepts must work downstream, and a value refused downstream
must be refused, with its line, when the config is read.
"""

from __future__ import annotations

from pathlib import Path

from aigw.auth.jwks import KEY_TYPE_FOR_ALGORITHM
from aigw.auth.tokens import SYMMETRIC_ALGORITHMS as VERIFIED_SYMMETRIC
from aigw.config import load_config
from aigw.config.model import KNOWN_ALGORITHMS, SYMMETRIC_ALGORITHMS
from aigw.sealed.sealer import MIN_SECRET_BYTES, Sealer
from tests.unit.config.helpers import MINIMAL, ConfigTestCase


class AlgorithmTests(ConfigTestCase):
    def test_known_algorithms_are_those_auth_verifies(self) -> None:
        """auth/jwks.py and auth/tokens.py still hold their own lists (they should
        import these); until then, this keeps the two from drifting."""
        self.assertEqual(set(KNOWN_ALGORITHMS), set(KEY_TYPE_FOR_ALGORITHM) | VERIFIED_SYMMETRIC)
        self.assertEqual(set(SYMMETRIC_ALGORITHMS), VERIFIED_SYMMETRIC)


class SessionSecretTests(ConfigTestCase):
    def load(self, secret: bytes) -> bytes | None:
        directory = self.directory()
        (directory / "session.key").write_bytes(secret)
        path = directory / "aigw.yaml"
        path.write_text(MINIMAL + "sessions: {secret_file: session.key}\n")
        return load_config(str(path), env={}).sessions.secret

    def test_a_secret_the_config_accepts_seals(self) -> None:
        secret = self.load(b"k" * MIN_SECRET_BYTES)
        assert secret is not None
        Sealer(secret)

    def test_a_secret_the_sealer_refuses_is_a_config_problem(self) -> None:
        with self.assertRaises(ValueError):
            Sealer(b"k" * (MIN_SECRET_BYTES - 1))
        directory = self.directory()
        Path(directory / "short.key").write_bytes(b"k" * (MIN_SECRET_BYTES - 1))
        text = MINIMAL + f"sessions: {{secret_file: {directory / 'short.key'}}}\n"
        self.assertProblem(text, "sessions.secret_file", 8, f"at least {MIN_SECRET_BYTES}")
