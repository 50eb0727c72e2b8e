"""The Debian package: built with dh-virtualenv, it carries the service and the plugin.

Building takes a minute or two and needs the build dependencies
(``dh-virtualenv debhelper dh-exec python3-venv python3-dev``), so it runs
when ``AIGW_TEST_DEB=1`` is set (``AIGW_TEST_DEB=1 make test``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.environ.get("AIGW_TEST_DEB") != "1" or shutil.which("dh_virtualenv") is None,
    reason="set AIGW_TEST_DEB=1 with dh-virtualenv installed to build the .deb",
)


@pytest.mark.timeout(1200)
def test_package_ships_the_service_the_plugin_and_the_config(tmp_path: Path) -> None:
    source = tmp_path / "aigw"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(source)], check=True, timeout=120)
    subprocess.run(
        ["dpkg-buildpackage", "-us", "-uc", "-b"],
        cwd=source,
        check=True,
        timeout=1100,
        capture_output=True,
    )
    (deb,) = tmp_path.glob("aigw_*.deb")
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True
    ).stdout
    for path in (
        "./lib/systemd/system/aigw.service",
        "./etc/aigw/aigw.yaml",
        "site-packages/twisted/plugins/aigw_plugin.py",
        "site-packages/twisted/plugins/dropin.cache",
        "./usr/bin/aigw -> /opt/venvs/aigw/bin/aigw",
    ):
        assert path in listing, path
    package = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Package"], check=True, capture_output=True, text=True
    ).stdout
    assert package.strip() == "aigw"
