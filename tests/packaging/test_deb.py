"""The Debian package: built with dh-virtualenv, lintian-clean, installed, removed, purged.

Building takes minutes (pip fetches every dependency) and needs the build
dependencies (``dh-virtualenv debhelper dh-exec python3-venv python3-dev``), so
it runs when ``AIGW_TEST_DEB=1`` is set (``AIGW_TEST_DEB=1 make test``).  It
builds the committed HEAD in a scratch clone; ``AIGW_TEST_DEB_DIR=DIR`` tests
the ``aigw_*.deb`` and ``.changes`` already built in DIR instead.

The lintian test needs ``lintian``.  The install test needs root and apt, and
a machine without aigw installed: it installs the package, removes it (the
configuration, session key, state and user stay), purges it (all gone) and
leaves the machine as it found it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path("/usr/lib/aigw")
#: The compiled modules of the virtualenv's wheels: stripped by dh_strip, still loadable.
EXTENSIONS = (
    "cryptography.hazmat.bindings._rust",
    "httptools.parser.parser",
    "orjson",
    "zope.interface._zope_interface_coptimizations",
    "markupsafe._speedups",
    "_cffi_backend",
)

pytestmark = pytest.mark.skipif(
    os.environ.get("AIGW_TEST_DEB") != "1" or shutil.which("dh_virtualenv") is None,
    reason="set AIGW_TEST_DEB=1 with dh-virtualenv installed to build the .deb",
)


def run(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, timeout=timeout, capture_output=True, text=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding aigw_*.deb and aigw_*.changes."""
    given = os.environ.get("AIGW_TEST_DEB_DIR")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("deb")
    source = out / "aigw"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(source)], check=True, timeout=120)
    subprocess.run(
        ["dpkg-buildpackage", "-us", "-uc", "-b"],
        cwd=source,
        check=True,
        timeout=1100,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def deb(built: Path) -> Path:
    (path,) = built.glob("aigw_*.deb")
    return path


@pytest.mark.timeout(1200)
def test_package_ships_the_service_the_plugin_and_the_config(deb: Path) -> None:
    listing = run("dpkg-deb", "-c", str(deb)).stdout
    for path in (
        "./lib/systemd/system/aigw.service",
        "./etc/aigw/aigw.yaml",
        "./usr/share/aigw/grafana/aigw.json",
        # Several processes on one host, and the shapes docs/scale-out.md describes.
        "./lib/systemd/system/aigw@.service",
        "./lib/systemd/system/aigw@.socket",
        "./usr/share/doc/aigw/examples/aigw-workers.yaml",
        "./usr/share/doc/aigw/examples/haproxy/aigw.cfg",
        "./usr/share/doc/aigw/examples/kubernetes/deployment.yaml",
        "./usr/share/doc/aigw/README.md",
        "./etc/logrotate.d/aigw",
        "./usr/share/doc/aigw/copyright",
        "site-packages/twisted/plugins/aigw_plugin.py",
        "site-packages/twisted/plugins/dropin.cache",
        "./usr/bin/aigw -> ../lib/aigw/bin/aigw",  # dh_link: relative within /usr
    ):
        assert path in listing, path
    for absent in ("./opt/", "__pycache__", ".pyc", "session.key", "yaml/_yaml."):
        assert absent not in listing, absent
    assert run("dpkg-deb", "-f", str(deb), "Package").stdout.strip() == "aigw"
    conffiles = run("dpkg-deb", "--info", str(deb), "conffiles").stdout.split()
    assert sorted(conffiles) == ["/etc/aigw/aigw.yaml", "/etc/logrotate.d/aigw"], (
        "the session key is generated, not a conffile"
    )


@pytest.mark.timeout(1200)
def test_lintian_reports_no_errors(built: Path) -> None:
    """The .deb, the -dbgsym .deb and the .changes; debian/aigw.lintian-overrides gives reasons."""
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (apt-get install lintian)")
    (changes,) = built.glob("aigw_*.changes")
    result = run("lintian", "--fail-on", "error", str(changes), timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith("E:")]


def installed(package: str) -> bool:
    status = run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", package, check=False).stdout
    return status.startswith(("ii", "rc", "iU", "iF"))


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def machine() -> Iterator[None]:
    """Root, apt, and no aigw yet; whatever happens, aigw is purged afterwards."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("installing the package needs root and apt-get")
    if installed("aigw") or user_exists("aigw") or Path("/etc/aigw").exists():
        pytest.skip("aigw is already on this machine: not touching it")
    try:
        yield
    finally:
        run("apt-get", "purge", "-y", "aigw", check=False, timeout=300)


@pytest.mark.timeout(1200)
@pytest.mark.usefixtures("machine")
def test_install_remove_keeps_configuration_purge_removes_it(deb: Path) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", str(deb.resolve())],
        check=True,
        timeout=600,
        capture_output=True,
        env=env,
    )
    unit = Path("/lib/systemd/system/aigw.service")
    assert unit.is_file()
    assert Path("/usr/bin/aigw").resolve() == VENV / "bin" / "aigw"
    key = Path("/etc/aigw/session.key")
    assert key.stat().st_size == 32
    assert key.stat().st_mode & 0o777 == 0o600
    assert pwd.getpwuid(key.stat().st_uid).pw_name == "aigw"
    assert grp.getgrgid(key.stat().st_gid).gr_name == "aigw"
    assert run("/usr/bin/aigw", "check", "/etc/aigw/aigw.yaml", check=False).returncode == 0
    imports = "import " + ", ".join(EXTENSIONS)
    run(str(VENV / "bin" / "python"), "-c", imports)
    # PyYAML without its copy of libyaml (debian/rules): the pure-Python loader aigw uses.
    yaml = "import yaml; assert not yaml.__with_libyaml__; yaml.compose('a: 1', yaml.SafeLoader)"
    run(str(VENV / "bin" / "python"), "-c", yaml)
    assert list(VENV.glob("lib/python3*/site-packages/aigw/__pycache__/*.pyc")), "postinst"
    analyze = shutil.which("systemd-analyze")
    if analyze:
        result = run(analyze, "verify", "--man=no", str(unit), check=False)
        assert result.returncode == 0, result.stderr
        assert [line for line in result.stderr.splitlines() if "aigw" in line] == []

    state = Path("/var/lib/aigw")  # state_dir, made by the postinst for the service user
    assert (state.owner(), state.group(), state.stat().st_mode & 0o777) == ("aigw", "aigw", 0o700)
    # What the running service would have made: LogsDirectory= and the audit file.
    for directory in (Path("/var/log/aigw"), Path("/var/lib/aigw")):
        directory.mkdir(exist_ok=True)
        (directory / "kept").write_text("")
    secret = key.read_bytes()

    run("apt-get", "remove", "-y", "aigw", timeout=300)
    assert not VENV.exists(), "the virtualenv and its byte code are gone"
    assert not Path("/usr/bin/aigw").exists()
    assert key.read_bytes() == secret
    assert Path("/etc/aigw/aigw.yaml").is_file()
    assert user_exists("aigw")
    assert (Path("/var/log/aigw") / "kept").exists()
    assert (Path("/var/lib/aigw") / "kept").exists()

    run("apt-get", "purge", "-y", "aigw", timeout=300)
    assert not installed("aigw")
    for gone in (Path("/etc/aigw"), Path("/var/log/aigw"), Path("/var/lib/aigw")):
        assert not gone.exists(), gone
    assert not user_exists("aigw")
    with pytest.raises(KeyError):
        grp.getgrnam("aigw")
