"""Smoke test of the benchmark harness: ``bench/run.py --quick --rows direct``.

It starts the reference upstream (and the authorization server), drives it
with wrk for a few seconds and checks the shape of the table and of the
closing line.  Skipped where wrk or node is not installed (.ci/run installs
wrk).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from typing import Any

from tests.bench.harness import NEEDS_WRK_AND_NODE, ROOT, run_script

CLOSING = re.compile(
    r"^aigw: rps32=(?P<rps>\S+) added_p50_ms=(?P<p50>\S+) best_peer_ratio=(?P<ratio>\S+)"
    r" rss_mib=(?P<rss>\S+) x2_ratio=(?P<x2>\S+)$"
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
    assert match.group("rss") == "na"
    assert match.group("x2") == "na"


def test_unknown_row_is_refused() -> None:
    done = run_bench("--quick", "--rows", "nope")
    assert done.returncode == 2
    assert "unknown row" in done.stderr


def load_run_module() -> Any:
    """bench/run.py as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_closing_line_carries_memory_and_two_process_ratio() -> None:
    """Issue 15: the aigw row's peak RSS and aigw-x2's c32 rate over aigw's, from the table's
    medians; no wrk needed, the rows are made up."""
    run = load_run_module()

    def row(name: str, c1: list[float], c32: list[float], rss: float) -> Any:
        made = run.Row(name, rss_mib=rss)
        made.points = {
            1: [run.Point(r, p50, p50, 0, {}) for r, p50 in c1],
            32: [run.Point(r, 9.0, 9.0, 0, {}) for r, _ in c32],
        }
        return made

    rows = [
        row("direct", [(9000, 0.10), (9000, 0.12), (9000, 0.11)], [(30000, 0)] * 3, 60.0),
        row("aigw", [(2000, 0.30), (2000, 0.34), (2000, 0.32)], [(4000, 0), (4200, 0)], 58.4),
        row("aigw-x2", [(2000, 0.3)], [(6000, 0), (6300, 0)], 117.0),
        row("mcp-proxy", [(300, 3.0)], [(400, 0)], 110.0),
    ]
    args = argparse.Namespace(rounds=3, duration=5)
    lines = run.report(rows, [1, 32], args, None).splitlines()
    match = CLOSING.match(lines[-1])
    assert match, lines[-1]
    assert match.groupdict() == {
        "rps": "4100",  # median of 4000 and 4200
        "p50": "0.21",  # 0.32 - 0.11
        "ratio": "10.25",  # 4100 / 400
        "rss": "58.4",
        "x2": "1.50",  # 6150 / 4100
    }
