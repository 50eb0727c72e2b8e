"""The built wheel ships the twistd plugin without claiming Twisted's namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIND_PLUGIN = """
import sys
sys.path = [p for p in sys.path if os.path.realpath(p) != os.path.realpath(ROOT)]
sys.path.insert(0, TARGET)
import aigw
assert aigw.__file__.startswith(TARGET), aigw.__file__
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
print(sorted(p.tapname for p in getPlugins(IServiceMaker)))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (built,) = out.glob("aigw-*.whl")
    return built


def test_wheel_contains_the_plugin_and_no_twisted_package_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/aigw_plugin.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert not any(name.endswith("dropin.cache") for name in names)
    assert "aigw/tap.py" in names


def test_twistd_finds_the_plugin_from_a_wheel_install(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    code = f"import os\nROOT = {str(ROOT)!r}\nTARGET = {str(target)!r}\n" + FIND_PLUGIN
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 0, result.stderr
    assert "'aigw'" in result.stdout
