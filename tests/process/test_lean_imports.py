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
from aigw.config import parse_config
from aigw.service import GatewayService

backend, extra, modules = sys.argv[1], sys.argv[2], sys.argv[3:]
text = "listen: [tcp:0]\npublic_url: http://127.0.0.1:1975\nmcp_path: /mcp\n"
config = parse_config(text + extra + "backends:\n  - {name: one, %s}\n" % backend)
config = attrs.evolve(config, sessions=attrs.evolve(config.sessions, secret=b"k" * 32))
service = GatewayService(config, MemoryReactorClock(), log_to_stderr=False)
print(" ".join(str(name in sys.modules) for name in modules))
"""

HTTP = "url: http://127.0.0.1:3001/mcp"

#: What only a ``user_oauth`` backend uses (aigw as the backend's OAuth client), and the
#: pages of users' authorizations, served whenever a store can keep their tokens.
USER_OAUTH = (
    "aigw.upstream.user_oauth",
    "aigw.upstream.user_authorization",
    "aigw.upstream.protected_resource",
    "aigw.upstream.registration",
    "aigw.upstream.token_endpoint",
)
OAUTH_PAGES = (
    "aigw.upstream.user_links",
    "aigw.auth.browser_login",
    "aigw.web.upstream_oauth",
    "aigw.web.elicitation_notices",
)
#: A user_oauth link is opened by a user who signs in at aigw's own issuer.
JWT_AUTH = (
    "auth: {issuer: http://127.0.0.1:9, jwks_uri: http://127.0.0.1:9/jwks,"
    " audiences: [http://127.0.0.1:1975/mcp]}\n"
)


def imported(*modules: str, backend: str = HTTP, extra: str = "auth: none\n") -> list[bool]:
    """Whether each of ``modules`` was imported once a gateway was built from a config with
    one backend (``backend``: the keys of its flow mapping) and the top-level keys ``extra``
    (``auth`` among them)."""
    out = subprocess.check_output(
        [sys.executable, "-c", PROGRAM, backend, extra, *modules], text=True, timeout=60, cwd=ROOT
    )
    return [word == "True" for word in out.split()]


def stateful(directory: Path) -> str:
    """The top-level keys of a store in ``directory``."""
    key = directory / "store.key"
    key.write_bytes(b"s" * 32)
    key.chmod(0o600)
    return f"state_dir: {directory}\ntoken_store:\n  key_file: {key}\n"


def test_no_state_dir_never_imports_sqlite() -> None:
    assert imported("sqlite3", "aigw.store.sqlite") == [False, False]


def test_native_config_of_plain_http_backends_never_imports_envoy_stdio_or_token_clients() -> None:
    modules = ("aigw.config.envoy", "aigw.upstream.stdio", "aigw.upstream.token_exchange")
    assert imported(*modules) == [False, False, False]


def test_command_backend_imports_stdio() -> None:
    assert imported("aigw.upstream.stdio", backend="command: cat") == [True]


def test_state_dir_opens_the_sqlite_store(tmp_path: Path) -> None:
    modules = imported("sqlite3", "aigw.store.sqlite", extra="auth: none\n" + stateful(tmp_path))
    assert modules == [True, True]


def test_without_a_store_nothing_of_user_oauth_is_imported() -> None:
    """No store, no user_oauth backend possible (its config needs ``state_dir``, which
    only a restart changes): neither its client nor its pages."""
    assert imported(*USER_OAUTH, *OAUTH_PAGES, extra=JWT_AUTH) == [False] * 9


def test_a_store_serves_the_pages_without_a_user_oauth_backend(tmp_path: Path) -> None:
    """The pages are routed (a reload may add a user_oauth backend, aigw/reload.py), and
    with them aigw's OAuth client; no backend's credentials use it yet."""
    modules = imported(*OAUTH_PAGES, *USER_OAUTH, extra=JWT_AUTH + stateful(tmp_path))
    assert modules == [True] * 4 + [False] + [True] * 4


def test_user_oauth_backend_imports_its_client(tmp_path: Path) -> None:
    backend = HTTP + ", auth: {user_oauth: {}}"
    modules = imported(*USER_OAUTH, backend=backend, extra=JWT_AUTH + stateful(tmp_path))
    assert modules == [True] * 5


def test_local_limits_never_import_the_redis_client() -> None:
    extra = "auth: none\nlimits: {rules: [{per: sub, rate: 10/s}]}\n"
    modules = imported("aigw.gateway.ratelimit", "aigw.gateway.redis_buckets", extra=extra)
    assert modules == [True, False]


def test_shared_limits_import_the_redis_client() -> None:
    """Built, not connected: the first request connects (``redis_buckets.py``)."""
    limits = "limits: {redis_url: redis://127.0.0.1:9/0, rules: [{per: sub, rate: 1/s}]}\n"
    assert imported("aigw.gateway.redis_buckets", extra="auth: none\n" + limits) == [True]


def test_klein_routes_without_werkzeugs_development_server_and_test_client() -> None:
    """aigw/web/__init__.py: werkzeug's package conveniences are left out."""
    modules = ("werkzeug.routing", "werkzeug.serving", "werkzeug.test", "werkzeug.wrappers")
    assert imported(*modules) == [True, False, False, False]


def test_klein_routes_without_its_forms_templates_and_sessions() -> None:
    """aigw/web/__init__.py: Klein's package conveniences are left out."""
    modules = ("klein._app", "klein._form", "klein._plating", "klein._session", "klein._requirer")
    assert imported(*modules) == [True, False, False, False, False]


def test_ended_sessions_stay_in_their_process_without_redis() -> None:
    """Without ``sessions.redis_url``, neither the subscription nor the Redis client."""
    modules = ("aigw.gateway.ended_sessions", "aigw.gateway.redis_client")
    assert imported(*modules, extra="auth: none\n") == [False, False]


def test_sessions_redis_url_imports_the_subscription() -> None:
    sessions = "sessions: {redis_url: redis://127.0.0.1:9/0}\n"
    assert imported("aigw.gateway.ended_sessions", extra="auth: none\n" + sessions) == [True]


COMPLETIONS = ("aigw.gateway.elicitation_completions", "aigw.gateway.redis_client")


def test_completion_notices_use_redis_only_with_sessions_redis_url(tmp_path: Path) -> None:
    """The pages' completion notices (a store) go over the peer hop without Redis, and
    through it (``elicitation_completions``) with ``sessions.redis_url``."""
    store = stateful(tmp_path)
    assert imported(*COMPLETIONS, extra=JWT_AUTH + store) == [False, False]
    sessions = "sessions: {redis_url: redis://127.0.0.1:9/0}\n"
    assert imported(*COMPLETIONS, extra=JWT_AUTH + store + sessions) == [True, True]
