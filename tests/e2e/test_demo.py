"""`make demo-once`: the README's first command, non-interactive, checks every step."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .harness.processes import REPO_ROOT


@pytest.mark.timeout(240)
def test_demo_runs_the_whole_flow_and_stops_everything(node_modules: None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--once"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for expected in (
        "WWW-Authenticate: Bearer resource_metadata=",
        '"resource": "http://127.0.0.1:1975/mcp"',
        "registered client_id:",
        "flights__search-flight",
        "everything__echo",
        "HTTP 403",
        "insufficient_scope",
        "The whole flow succeeded.",
        "Stopped everything the demo started.",
    ):
        assert expected in output
    assert "eyJ" not in output, "the demo must never print a raw token"
