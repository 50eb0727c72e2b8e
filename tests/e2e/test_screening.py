"""Tool description screening end to end: a real SDK server with a poisoned tool, the real
daemon, the official Python SDK client (issue 14 items 4 and 6).

Under ``block`` the client never sees the poisoned tool and calling it fails as an
unknown tool; under ``warn`` it sees it, and the audit file says what was found.
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
from .harness.oauth_client import connect_plain
from .harness.results import text_of
from .harness.upstreams import Upstream, start_pyserver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def poisoned() -> Iterator[Upstream]:
    if os.environ.get("AIGW_E2E_SKIP"):
        pytest.skip("AIGW_E2E_SKIP is set")
    upstream = start_pyserver(extra_args=["--poisoned"])
    try:
        yield upstream
    finally:
        upstream.stop()


def gateway_screening(upstream: Upstream, mode: str) -> Gateway:
    return start_gateway(
        [("py", upstream.url, f"screen_tools: {mode}")], extra="audit:\n  file: audit.log\n"
    )


def audit_events(gateway: Gateway, event: str) -> list[dict[str, Any]]:
    """The audit file's events of one kind (written before the list that caused them
    was answered; the bounded wait only keeps a slow disk from failing the test)."""
    path = Path(os.path.dirname(gateway.config_path), "audit.log")
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        found = [line for line in lines if line["event"] == event]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


async def test_block_hides_the_poisoned_tool_and_refuses_its_call(poisoned: Upstream) -> None:
    gateway = gateway_screening(poisoned, "block")
    try:
        async with connect_plain(gateway.url, mode="legacy") as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            assert "py__echo" in names
            assert "py__add" not in names
            with pytest.raises(Exception, match="unknown tool: py__add"):
                await client.call_tool("py__add", {"a": 1, "b": 2})
            assert text_of(await client.call_tool("py__echo", {"text": "clean"})) == "clean"
        [flagged] = audit_events(gateway, "tool_flagged")
        assert (flagged["backend"], flagged["name"], flagged["action"]) == ("py", "add", "blocked")
        denied = [e for e in audit_events(gateway, "access_decided") if e["name"] == "add"]
        assert [(e["decision"], e["rule"]) for e in denied] == [
            ("denied", "backends[0].screen_tools")
        ]
    finally:
        gateway.stop()


async def test_warn_serves_the_poisoned_tool_and_audits_the_flag(poisoned: Upstream) -> None:
    gateway = gateway_screening(poisoned, "warn")
    try:
        async with connect_plain(gateway.url, mode="legacy") as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            assert "py__add" in names
            result = await client.call_tool("py__add", {"a": 1, "b": 2})
            assert text_of(result) == "3"
        [flagged] = audit_events(gateway, "tool_flagged")
        assert (flagged["backend"], flagged["name"], flagged["kind"]) == ("py", "add", "tool")
        assert flagged["action"] == "warned"
        assert {"hidden_block", "sensitive_files", "conceal_from_user", "sidenote"} <= set(
            flagged["checks"]
        )
        assert any("~/.ssh" in reason for reason in flagged["reasons"])
    finally:
        gateway.stop()
