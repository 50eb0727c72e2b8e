"""Smoke test of the scale benchmark: ``bench/scale.py --quick``.

Tiny counts and 1 s points: it checks the shape of the tables, that the
numbers are positive, and the closing line; no timing is asserted.  Skipped
where wrk or node is not installed.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.bench.harness import NEEDS_WRK_AND_NODE, run_script

CLOSING = re.compile(
    r"^scale: list_c4_x2=(?P<ratio>\S+) session_kib=(?P<session>\S+) "
    r"get_stream_kib=(?P<get>\S+) listen_stream_kib=(?P<listen>\S+)$"
)

pytestmark = NEEDS_WRK_AND_NODE


def run_scale(*args: str) -> subprocess.CompletedProcess[str]:
    return run_script("scale.py", *args)


def test_quick_run(tmp_path: Path) -> None:
    raw_file = tmp_path / "scale.json"
    done = run_scale("--quick", "--json", str(raw_file))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()

    header = next(line for line in lines if line.startswith("backends "))
    for column in ("rps c1", "p50 c1", "p99 c4", "x1 rps c4"):
        assert column in header
    fanout = [line.split() for line in lines if re.match(r"^\d+ +tools/(list|call) ", line)]
    assert [(cells[0], cells[1]) for cells in fanout] == [
        ("1", "tools/list"),
        ("2", "tools/list"),
        ("1", "tools/call"),
        ("2", "tools/call"),
    ]
    for cells in fanout:
        rps1, p50, p99 = float(cells[2]), float(cells[3]), float(cells[4])
        assert rps1 > 0
        assert 0 < p50 <= p99

    header = next(line for line in lines if line.startswith("processes "))
    for column in ("rps c1", "rps c4", "x1 rps c4", "rps c4 per process", "RSS MiB"):
        assert column in header
    processes = [line.split() for line in lines if re.match(r"^[12] +\d+ +\d", line)]
    assert [cells[0] for cells in processes] == ["1", "2"]
    for cells in processes:
        rps1, p50, p99, rss = float(cells[1]), float(cells[2]), float(cells[3]), float(cells[-1])
        assert rps1 > 0
        assert 0 < p50 <= p99
        assert rss > 0
    # two processes carry two interpreters
    assert float(processes[1][-1]) > float(processes[0][-1])

    header = next(line for line in lines if line.startswith("what "))
    for column in ("count", "RSS MiB", "KiB/each", "up streams"):
        assert column in header
    streams = [line for line in lines if line.startswith(("GET streams", "subscriptions/listen"))]
    assert len(streams) == 6  # 0, 10 and closed, for each kind
    open_ten = [line.split() for line in streams if " 10 " in line and "closed" not in line]
    # every client stream holds one upstream GET stream (one backend)
    assert [cells[-1] for cells in open_ten] == ["10", "10"]

    match = CLOSING.match(lines[-1])
    assert match, lines[-1]
    assert float(match.group("ratio")) > 0
    assert match.group("session") != "na"

    raw = json.loads(raw_file.read_text())
    assert {row["method"] for row in raw["fanout"]} == {"tools/list", "tools/call"}
    assert [row["processes"] for row in raw["processes"]] == [1, 2]
    assert all(step["rss_kib"] > 0 for steps in raw["memory"] for step in steps)


def test_unknown_part_is_refused() -> None:
    done = run_scale("--parts", "nope")
    assert done.returncode == 2
    assert "unknown part" in done.stderr
