"""The systemd units as systemd reads them: ``systemd-analyze verify`` and ``security``.

Both run offline against a scratch root holding the units, the system's own
units (for the default dependencies such as ``sysinit.target``) and stand-ins
for the commands the units run, at the paths the package installs them to.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANALYZE = shutil.which("systemd-analyze")
SYSTEM_UNITS = next(
    (p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()),
    None,
)
#: What the units run: dh-virtualenv's venv (tests/packaging/test_deb.py) and kill(1).
COMMANDS = ("/usr/lib/aigw/bin/aigw", "/usr/lib/aigw/bin/twistd", "/bin/kill")
UNITS = {
    "aigw.service": ROOT / "debian" / "aigw.service",
    "aigw@.service": ROOT / "etc" / "systemd" / "aigw@.service",
    "aigw@.socket": ROOT / "etc" / "systemd" / "aigw@.socket",
}
#: The exposure README.md states (systemd 252), with a little room for other versions.
MAX_EXPOSURE = 3.0

pytestmark = pytest.mark.skipif(
    ANALYZE is None or SYSTEM_UNITS is None,
    reason="systemd-analyze and the system's unit files are needed (apt-get install systemd)",
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    for name, source in UNITS.items():
        shutil.copy(source, units / name)
    assert SYSTEM_UNITS is not None
    shutil.copytree(SYSTEM_UNITS, tmp_path / "usr" / "lib" / "systemd" / "system", symlinks=True)
    for command in COMMANDS:
        path = tmp_path / command.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return tmp_path


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args, f"--root={root}"], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("unit", ["aigw.service", "aigw@1.service", "aigw@1.socket"])
def test_verify_accepts_the_unit(root: Path, unit: str) -> None:
    """verify exits 0 even on a line it ignores: any complaint about our units fails."""
    result = analyze(root, "verify", "--man=no", unit)
    ours = [line for line in result.stderr.splitlines() if "aigw" in line]
    assert result.returncode == 0, result.stderr
    assert ours == [], result.stderr


@pytest.mark.parametrize("unit", ["aigw.service", "aigw@1.service"])
def test_security_exposure_is_as_documented(root: Path, unit: str) -> None:
    result = analyze(root, "security", "--offline=true", "--no-pager", unit)
    assert result.returncode == 0, result.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


def test_notify_reload_and_watchdog_are_configured() -> None:
    """What aigw's sd_notify support relies on (aigw/systemd.py, systemd.service(5))."""
    for name in ("aigw.service", "aigw@.service"):
        lines = set(UNITS[name].read_text().splitlines())
        for setting in (
            "Type=notify",
            "NotifyAccess=main",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "WatchdogSec=30s",
            "SystemCallFilter=@system-service",
            "SystemCallErrorNumber=EPERM",
        ):
            assert setting in lines, (name, setting)


def test_the_state_directory_belongs_to_the_service() -> None:
    """state_dir (/var/lib/aigw) is the one other place aigw writes under
    ProtectSystem=strict: the store's SQLite file, private to the service user."""
    for name in ("aigw.service", "aigw@.service"):
        lines = set(UNITS[name].read_text().splitlines())
        assert {"StateDirectory=aigw", "StateDirectoryMode=0700"} <= lines, name
