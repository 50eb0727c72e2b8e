"""What a gateway's config does not ask for, its process never imports (docs/performance.md,
"Imports a started gateway leaves out"): each module left out is RSS it does not carry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = r"""
import sys
import attrs
from twisted.internet.testing import MemoryReactorClock
from aigw.config import SessionsConfig, parse_config
from aigw.service import GatewayService

kind, state_dir, modules = sys.argv[1], sys.argv[2] or None, sys.argv[3:]
backend = "command: cat" if kind == "command" else "url: http://127.0.0.1:3001/mcp"
text = "listen: [tcp:0]\npublic_url: http://127.0.0.1:1975\nmcp_path: /mcp\nauth: none\n"
config = parse_config(text + "backends:\n  - {name: one, %s}\n" % backend)
config = attrs.evolve(config, state_dir=state_dir, sessions=SessionsConfig(secret=b"k" * 32))
service = GatewayService(config, MemoryReactorClock(), log_to_stderr=False)
print(" ".join(str(name in sys.modules) for name in modules))
"""


def imported(backend: str, state_dir: Path | None, *modules: str) -> list[str]:
    """Whether each of ``modules`` was imported once a gateway was built with one backend
    of kind ``backend`` (``url`` or ``command``) and ``state_dir``."""
    args = [backend, "" if state_dir is None else str(state_dir), *modules]
    out = subprocess.check_output(
        [sys.executable, "-c", PROGRAM, *args], text=True, timeout=60, cwd=ROOT
    )
    return out.split()


def test_no_state_dir_never_imports_sqlite() -> None:
    assert imported("url", None, "sqlite3", "aigw.store.sqlite") == ["False", "False"]


def test_native_config_of_plain_http_backends_never_imports_envoy_stdio_or_token_clients() -> None:
    modules = ("aigw.config.envoy", "aigw.upstream.stdio", "aigw.upstream.token_exchange")
    assert imported("url", None, *modules) == ["False", "False", "False"]


def test_command_backend_imports_stdio() -> None:
    assert imported("command", None, "aigw.upstream.stdio") == ["True"]


def test_state_dir_opens_the_sqlite_store(tmp_path: Path) -> None:
    assert imported("url", tmp_path, "sqlite3", "aigw.store.sqlite") == ["True", "True"]


def test_klein_routes_without_werkzeugs_development_server_and_test_client() -> None:
    """aigw/web/__init__.py: werkzeug's package conveniences are left out."""
    modules = ("werkzeug.routing", "werkzeug.serving", "werkzeug.test", "werkzeug.wrappers")
    assert imported("url", None, *modules) == ["True", "False", "False", "False"]
