"""What the benchmark smoke tests share: running a bench/ script, and when they can."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Skipped where wrk or node is not installed (.ci/run installs wrk).
NEEDS_WRK_AND_NODE = [
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``bench/<name>`` with this interpreter, its output captured, within 60 s."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
