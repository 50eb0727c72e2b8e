"""Smoke test of ``bench/floor.py``: one short round of every target.

The two do-nothing relays of ``bench/floor_relays.py`` must carry a whole MCP
session (initialize, tools/list, tools/call) to the reference upstream, and the
table must give each target a p50, an added time and a CPU figure.
"""

from __future__ import annotations

import re

from tests.bench.harness import NEEDS_WRK_AND_NODE, run_script

pytestmark = NEEDS_WRK_AND_NODE

ROW = re.compile(
    r"^\| (?P<name>[a-z-]+) \| (?P<p50>[0-9.]+) \| (?P<added>-?[0-9.]+) \| (?P<cpu>[0-9]+) \|$"
)


def test_one_round_of_every_target() -> None:
    done = run_script("floor.py", "--rounds", "1", "--duration", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {
        match.group("name"): match
        for match in map(ROW.match, done.stdout.splitlines())
        if match is not None
    }
    assert sorted(rows) == ["aigw", "direct", "relay-bytes", "relay-http"]
    assert float(rows["direct"].group("added")) == 0
    for match in rows.values():
        assert float(match.group("p50")) > 0
        assert int(match.group("cpu")) > 0
