"""What a gateway's config does not ask for, its process never imports (docs/performance.md,
"Imports a started gateway leaves out"): each module left out is RSS it does not carry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys, tempfile
import attrs
from twisted.internet.testing import MemoryReactorClock
from aigw.config import BackendConfig, Config, SessionsConfig
from aigw.service import GatewayService

state_dir = tempfile.mkdtemp() if sys.argv[1] == "state" else None
backends = (BackendConfig("one", "http://127.0.0.1:3001/mcp"),)
config = Config(("tcp:0",), "http://127.0.0.1:1975", "/mcp", None, backends)
config = attrs.evolve(
    config, state_dir=state_dir, sessions=SessionsConfig(secret=b"k" * 32)
)
service = GatewayService(config, MemoryReactorClock(), log_to_stderr=False)
print(" ".join(str(name in sys.modules) for name in sys.argv[2:]))
"""


def imported(case: str, *modules: str) -> list[str]:
    """Whether each of ``modules`` was imported once a gateway of ``case`` was built."""
    out = subprocess.check_output(
        [sys.executable, "-c", PROGRAM, case, *modules], text=True, timeout=60, cwd=ROOT
    )
    return out.split()


def test_no_state_dir_never_imports_sqlite() -> None:
    assert imported("plain", "sqlite3", "aigw.store.sqlite") == ["False", "False"]


def test_state_dir_opens_the_sqlite_store() -> None:
    assert imported("state", "sqlite3", "aigw.store.sqlite") == ["True", "True"]
