"""Session keys end to end: rotation with ``sessions.old_secret_files`` across a restart,
and ``sessions.ttl``, through the real daemon and the ``mcp`` SDK pyserver.

A 2025-11-25 client keeps the ``Mcp-Session-Id`` it was given (MCP basic/transports
"Session Management"); aigw seals what the session needs into that id, so the key that
sealed it decides whether any later process can open it.
"""

from __future__ import annotations

import tempfile

import httpx2
import pytest

from .aigw import Gateway, edit_and_reload, open_session, start_gateway, write_session_key
from .harness.processes import LOG_DIR, until
from .harness.upstreams import Upstream

pytestmark = pytest.mark.timeout(60)

PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


def ping(gateway: Gateway, headers: dict[str, str]) -> int:
    return httpx2.post(gateway.url, json=PING, headers=headers, timeout=10).status_code


def key_in_a_directory_of_its_own() -> str:
    return write_session_key(tempfile.mkdtemp(prefix="aigw-key-", dir=LOG_DIR))


def test_a_session_outlives_a_key_rotation_and_not_its_ttl(pyserver: Upstream) -> None:
    """docs: "old_secret_files: previous keys, still accepted: for key rotation"; an id
    sealed with a key the process no longer holds is 404 (the client starts anew), and
    every id is 404 once older than ``sessions.ttl`` (a reload changes it live)."""
    old = key_in_a_directory_of_its_own()
    before = start_gateway([("py", pyserver.url)], session_key=old)
    try:
        session = open_session(before.url)
        assert ping(before, session) == 200
    finally:
        before.stop()

    new = key_in_a_directory_of_its_own()
    forgetful = start_gateway([("py", pyserver.url)], session_key=new)
    try:
        assert ping(forgetful, session) == 404  # sealed with a key it does not hold
    finally:
        forgetful.stop()

    rotated = start_gateway(
        [("py", pyserver.url)], session_key=new, sessions=f", old_secret_files: [{old}]"
    )
    try:
        assert ping(rotated, session) == 200, rotated.process.log_tail()
        fresh = open_session(rotated.url)
        assert ping(rotated, fresh) == 200
        edit_and_reload(rotated, lambda text: text.replace(f"[{old}]", f"[{old}], ttl: 1s"))
        assert "reloaded" in rotated.process.log()
        assert until(lambda: ping(rotated, fresh) == 404, 10), rotated.process.log_tail()
        assert ping(rotated, session) == 404
        assert open_session(rotated.url)["Mcp-Session-Id"]  # a new one is opened
    finally:
        rotated.stop()
