"""The audit trail end to end: the real daemon, authorization server, SDK client and upstream.

Issue 12 item 2: one event per authorization decision and per tool call, with the
rule that decided, in the ``audit.file`` as JSON lines; never token contents.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .aigw import Gateway, start_gateway
from .harness.authserver import AuthServer
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ACCESS = """\
access:
  default: allow
  rules:
    - effect: allow
      subjects: [alice]
      tools: [echo]
    - effect: deny
      tools: [whoami-headers]
audit:
  file: audit.log
"""


@pytest.fixture(scope="module")
def gateway(auth_server: AuthServer, pyserver: Upstream) -> Iterator[Gateway]:
    started = start_gateway([("py", pyserver.url)], issuer=auth_server.issuer, extra=ACCESS)
    try:
        yield started
    finally:
        started.stop()


def audit_text(gateway: Gateway) -> str:
    """The audit file (``audit.log`` next to the config: relative names are read so)."""
    return Path(os.path.dirname(gateway.config_path), "audit.log").read_text()


def audit_lines(gateway: Gateway, count: int) -> list[dict[str, Any]]:
    """The audit file's events, once it holds ``count`` of them.

    Each event is written before the answer it belongs to is sent, so they are all
    there already; the bounded wait only keeps a slow disk from failing the test."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in audit_text(gateway).splitlines()]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


async def test_allowed_and_denied_calls_carry_the_deciding_rule(
    gateway: Gateway, auth_server: AuthServer
) -> None:
    storage = MemoryTokenStorage()
    async with connect(gateway.url, "alice", storage=storage, mode="legacy") as client:
        result = await client.call_tool("py__echo", {"text": "audited"})
        assert text_of(result) == "audited"
        with pytest.raises(Exception, match="not allowed"):
            await client.call_tool("py__whoami-headers", {})
    client_info = await storage.get_client_info()
    tokens = await storage.get_tokens()
    assert client_info is not None
    assert tokens is not None

    lines = audit_lines(gateway, 4)
    assert [
        (
            line["event"],
            line["exposed"],
            line.get("decision"),
            line.get("rule"),
            line.get("outcome"),
        )
        for line in lines
    ] == [
        ("access_decided", "py__echo", "allowed", "access.rules[0]", None),
        ("request_finished", "py__echo", None, None, "ok"),
        ("access_decided", "py__whoami-headers", "denied", "access.rules[1]", None),
        ("request_finished", "py__whoami-headers", None, None, "denied"),
    ]
    for line in lines:
        assert (line["sub"], line["client_id"], line["method"], line["backend"]) == (
            "alice",
            client_info.client_id,
            "tools/call",
            "py",
        )
        assert line["issuer"].rstrip("/") == auth_server.issuer.rstrip("/")
        assert line["time"].endswith("Z")
        assert "arguments" not in line
    assert lines[0]["request_id"] == lines[1]["request_id"] != lines[2]["request_id"]
    assert lines[2]["request_id"] == lines[3]["request_id"]
    assert lines[1]["duration_ms"] > 0
    written = audit_text(gateway)
    assert tokens.access_token not in written
    assert tokens.access_token.split(".")[1] not in written  # not even the payload
