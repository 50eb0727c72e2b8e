"""debian/ read as text: cheap checks that run always (tests/packaging/test_deb.py builds it).

Every lintian override carries its reason; the maintainer scripts are ``set -e``
shell with ``#DEBHELPER#``; ``apt purge`` removes what ``apt remove`` keeps; the
paths the units, the links and the rules name agree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEBIAN = ROOT / "debian"
SCRIPTS = ("aigw.postinst", "aigw.prerm", "aigw.postrm")
#: Where dh-virtualenv puts the virtualenv: DH_VIRTUALENV_INSTALL_ROOT + the package name.
VENV = "/usr/lib/aigw"


def case_arm(script: str, pattern: str) -> str:
    """The body of the ``case`` arm whose pattern list is ``pattern``, up to its ``;;``."""
    found = re.search(rf"^\s*{re.escape(pattern)}\)\n(.*?)^\s*;;", script, re.M | re.S)
    assert found, pattern
    return found.group(1)


def test_every_lintian_override_gives_its_reason() -> None:
    """Each override (or block of overrides) sits right under a comment saying why."""
    lines = (DEBIAN / "aigw.lintian-overrides").read_text().splitlines()
    overrides = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    assert overrides
    for i in overrides:
        assert lines[i].startswith("aigw: "), lines[i]
        above = i - 1
        while lines[above].startswith("aigw: "):
            above -= 1
        assert lines[above].startswith("# "), f"no reason comment above: {lines[i]}"
        assert len(lines[above]) > 20, f"a reason, not a word: {lines[above]}"


def test_no_error_is_overridden_away() -> None:
    """Errors are fixed, not silenced: /opt, byte code and the copyright file stay fixed."""
    text = (DEBIAN / "aigw.lintian-overrides").read_text()
    for tag in (
        "dir-or-file-in-opt",
        "package-installs-python-pycache-dir",
        "no-copyright-file",
        "bogus-mail-host",
        "unstripped-binary-or-object",
        "embedded-library",
    ):
        assert f": {tag}" not in text, tag


@pytest.mark.parametrize("name", SCRIPTS)
def test_maintainer_script_is_set_e_shell_with_debhelper(name: str) -> None:
    path = DEBIAN / name
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert re.search(r"^set -e$", text, re.M)
    assert "#DEBHELPER#" in text
    assert path.stat().st_mode & 0o111, "executable, as git records it"
    assert "debconf" not in text
    if shutil.which("sh"):
        subprocess.run(["sh", "-n", str(path)], check=True, timeout=10)


def test_purge_removes_what_remove_keeps() -> None:
    postrm = (DEBIAN / "aigw.postrm").read_text()
    purge = case_arm(postrm, "purge")
    for removed in ("/etc/aigw/session.key", "/var/lib/aigw", "/var/log/aigw"):
        assert removed in purge, removed
    assert re.search(r"deluser .*--system aigw", purge)
    assert "getent passwd aigw" in purge, "deluser is guarded"
    keep = case_arm(postrm, "remove|upgrade|failed-upgrade|abort-install|abort-upgrade|disappear")
    assert keep.strip() == "", "remove and upgrade touch nothing"


def test_session_key_is_generated_not_shipped() -> None:
    """Not a conffile: made once by the postinst, 0600 and owned by aigw, purged by the postrm."""
    postinst = (DEBIAN / "aigw.postinst").read_text()
    configure = postinst.split('if [ "$1" = "configure" ]; then', 1)[1]
    assert "umask 077" in configure
    assert "chown aigw:aigw /etc/aigw/session.key" in configure
    assert "[ ! -e /etc/aigw/session.key ]" in configure, "never overwritten on upgrade"
    assert "session.key" not in (DEBIAN / "aigw.install").read_text()


def test_units_links_and_rules_name_the_same_virtualenv() -> None:
    rules = (DEBIAN / "rules").read_text()
    assert f"DH_VIRTUALENV_INSTALL_ROOT={VENV.rsplit('/', 1)[0]}\n" in rules
    assert (DEBIAN / "aigw.links").read_text().split() == [
        f"{VENV.lstrip('/')}/bin/aigw",
        "usr/bin/aigw",
    ]
    for unit in (DEBIAN / "aigw.service", ROOT / "etc" / "systemd" / "aigw@.service"):
        commands = re.findall(r"^Exec(?:StartPre|Start)=(\S+)", unit.read_text(), re.M)
        assert commands, unit
        for command in commands:
            assert command.startswith(f"{VENV}/bin/"), (unit, command)


def test_everything_installed_exists() -> None:
    for line in (DEBIAN / "aigw.install").read_text().splitlines():
        source = line.split()[0]
        assert list(ROOT.glob(source)), source
    for line in (DEBIAN / "aigw.docs").read_text().splitlines():
        assert (ROOT / line).is_file(), line


def test_logrotate_moves_the_audit_file_and_signals_aigw() -> None:
    """aigw reopens its audit file on SIGUSR1 (aigw/service.py): logrotate's ``create``
    and the signal in ``postrotate``; copytruncate would lose the lines written between
    its copy and its truncate, and a reload would put in force a half-edited config."""
    text = (DEBIAN / "aigw.logrotate").read_text()
    rules = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert "/var/log/aigw/*.log {" in rules
    assert "copytruncate" not in rules
    assert re.search(r"^\s*create 0640 aigw aigw$", rules, re.M)
    postrotate = rules.split("postrotate", 1)[1].split("endscript", 1)[0]
    assert (
        "systemctl kill --signal=USR1 --kill-whom=main aigw.service 'aigw@*.service'" in postrotate
    )
    assert "reload" not in postrotate
    # The path aigw.yaml's comment proposes is one this file rotates.
    assert "file: /var/log/aigw/audit.log" in (ROOT / "etc" / "aigw" / "aigw.yaml").read_text()
