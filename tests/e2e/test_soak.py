"""The soak (``make soak``, issue 16 item 7) run briefly, so it cannot rot: 5 seconds of
5 clients through the real stack it starts itself (``python -m tests.soak``).

Asserted: the closing line's contract, requests sent and none failed, the file
descriptors back to the baseline, and an exit status that agrees with the criteria
the run reports.  RSS growth is not asserted here: over 5 seconds the warm-up is
not over; ``make soak`` judges it over a minute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from .harness.processes import REPO_ROOT

CLOSING = re.compile(
    r"^soak: requests=(?P<requests>\d+) failed=(?P<failed>\d+) "
    r"rss_growth_pct=(?P<rss>-?\d+\.\d) fds_delta=(?P<fds>-?\d+)$"
)

pytestmark = [pytest.mark.timeout(300)]


def test_a_short_soak(node_modules: None) -> None:
    environ = {**os.environ, "SOAK_SECONDS": "5", "SOAK_CLIENTS": "5", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.soak"],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    match = CLOSING.match(lines[-1])
    assert match, done.stdout + done.stderr
    assert int(match["requests"]) > 0
    assert int(match["failed"]) == 0, done.stdout
    assert int(match["fds"]) <= 0, done.stdout
    # every kind of request was made (a table row each) and none failed
    rows = {line.rsplit(None, 2)[0]: line.split()[-2:] for line in lines if line[:1].isalpha()}
    for kind in (
        "initialize",
        "notifications/initialized",
        "GET stream",
        "DELETE",
        "server/discover",
        "subscriptions/listen",
        "tools/list",
        "prompts/list",
        "resources/list",
        "tools/call",
        "tools/call (progress)",
    ):
        assert kind in rows, done.stdout
        sent, failed = rows[kind]
        assert int(sent) > 0, kind
        assert failed == "0", (kind, done.stdout)
    unmet = [line for line in lines if line.startswith("# not met:")]
    assert done.returncode == (1 if unmet else 0), done.stdout + done.stderr
