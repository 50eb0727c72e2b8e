"""TLS is held back until a config needs it (aigw/tls.py, docs/performance.md "A leaner,
faster process"): ``twistd aigw`` with plain listeners and http backends never imports
pyOpenSSL or Twisted's TLS; an https backend (at start or added by a reload) or a TLS
listener imports them, and the TLS listener serves."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.certificates import write_self_signed
from tests.process.helpers import BIN, ROOT, free_port, stop, wait_for_health

#: Run through twistd's own option parsing (aigw.tap), as ``twistd aigw --config`` does.
PROGRAM = r"""
import json, shutil, sys
from twisted.internet.interfaces import IReactorSSL
from aigw import tap

config, after = sys.argv[1], sys.argv[2]
options = tap.Options()
options.parseOptions(["--config", config])
service = tap.makeService(options)
from twisted.internet import reactor

TLS = ("OpenSSL", "twisted.protocols.tls", "twisted.internet.ssl", "service_identity")
loaded = lambda: [name for name in TLS if sys.modules.get(name) is not None]
report = {"start": loaded(), "reactor_ssl": IReactorSSL.providedBy(reactor)}
if after:
    shutil.copyfile(after, config)
    service.reloader.startService()
    report["reloaded"] = service.reloader.reload()
    report["after_reload"] = loaded()
print(json.dumps(report))
"""
ALL = ["OpenSSL", "twisted.protocols.tls", "twisted.internet.ssl", "service_identity"]


def config_text(listen: str, backend_url: str, ca_file: str) -> str:
    return (
        f"listen: ['{listen}']\npublic_url: http://127.0.0.1:1975\nmcp_path: /mcp\n"
        "auth: none\nmetrics: off\nlogging: {level: error}\n"
        f"backends:\n  - {{name: one, url: '{backend_url}', ca_file: {ca_file}}}\n"
    )


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, str, str]:
    cert, key = write_self_signed(str(tmp_path))
    return tmp_path, cert, key


def run_gateway(directory: Path, text: str, after: str = "") -> dict[str, object]:
    config = directory / "aigw.yaml"
    config.write_text(text)
    if after:
        (directory / "after.yaml").write_text(after)
    args = [str(config), str(directory / "after.yaml") if after else ""]
    out = subprocess.check_output(
        [sys.executable, "-c", PROGRAM, *args], text=True, timeout=60, cwd=ROOT
    )
    return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


def test_plain_listeners_and_http_backends_never_import_tls(files: tuple[Path, str, str]) -> None:
    directory, cert, _ = files
    report = run_gateway(directory, config_text("tcp:0", "http://127.0.0.1:9/mcp", cert))
    assert report == {"start": [], "reactor_ssl": False}


def test_an_https_backend_imports_tls_at_start(files: tuple[Path, str, str]) -> None:
    directory, cert, _ = files
    report = run_gateway(directory, config_text("tcp:0", "https://127.0.0.1:9/mcp", cert))
    assert report["start"] == ALL


def test_a_reload_that_adds_an_https_backend_imports_tls(files: tuple[Path, str, str]) -> None:
    directory, cert, _ = files
    plain = config_text("tcp:0", "http://127.0.0.1:9/mcp", cert)
    secure = config_text("tcp:0", "https://127.0.0.1:9/mcp", cert)
    report = run_gateway(directory, plain, after=secure)
    assert report == {"start": [], "reactor_ssl": False, "reloaded": True, "after_reload": ALL}


def test_a_tls_listener_imports_tls_before_the_reactor(files: tuple[Path, str, str]) -> None:
    directory, cert, key = files
    listen = f"ssl:0:privateKey={key}:certKey={cert}"
    report = run_gateway(directory, config_text(listen, "http://127.0.0.1:9/mcp", cert))
    assert report == {"start": ALL, "reactor_ssl": True}


def test_twistd_aigw_serves_on_a_tls_listener(files: tuple[Path, str, str]) -> None:
    directory, cert, key = files
    port = free_port()
    listen = f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    config = directory / "aigw.yaml"
    config.write_text(config_text(listen, "http://127.0.0.1:9/mcp", cert))
    health = free_port()  # a plain listener beside it, for wait_for_health
    config.write_text(
        config.read_text().replace(
            f"listen: ['{listen}']", f"listen: ['{listen}', 'tcp:{health}:interface=127.0.0.1']"
        )
    )
    process = subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", "aigw", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=directory,
        env=dict(os.environ),
    )
    try:
        wait_for_health(health, process)
        context = ssl.create_default_context(cafile=cert)
        url = f"https://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, timeout=10, context=context) as reply:
            assert json.loads(reply.read()) == {"status": "alive"}
    finally:
        assert stop(process) == 0
