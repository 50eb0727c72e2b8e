"""Smoke test of the benchmark harness: ``bench/run.py --quick --rows direct``.

It starts the reference upstream (and the authorization server), drives it
with wrk for a few seconds and checks the shape of the table and of the
closing line.  Skipped where wrk or node is not installed (.ci/run installs
wrk).
"""

from __future__ import annotations

import re
import subprocess

from tests.bench.harness import NEEDS_WRK_AND_NODE, run_script

CLOSING = re.compile(
    r"^aigw: rps32=(?P<rps>\S+) added_p50_ms=(?P<p50>\S+) best_peer_ratio=(?P<ratio>\S+)$"
)

pytestmark = NEEDS_WRK_AND_NODE


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return run_script("run.py", *args)


def test_quick_direct_row() -> None:
    done = run_bench("--quick", "--rows", "direct")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    header = next(line for line in lines if line.startswith("row "))
    for column in ("rps c1", "p50 c1", "p99 c1", "rps c32", "p99 c32", "RSS MiB", "x direct"):
        assert column in header
    row = next(line for line in lines if line.startswith("direct "))
    cells = row.split()
    rps1, p50, p99, rps32 = float(cells[1]), float(cells[2]), float(cells[3]), float(cells[4])
    assert rps1 > 0
    assert rps32 > 0
    assert 0 < p50 <= p99
    assert cells[-1] == "ok"
    # the closing line is the last one; without an aigw row its values are "na"
    match = CLOSING.match(lines[-1])
    assert match, lines[-1]
    assert match.group("rps") == "na"


def test_unknown_row_is_refused() -> None:
    done = run_bench("--quick", "--rows", "nope")
    assert done.returncode == 2
    assert "unknown row" in done.stderr
