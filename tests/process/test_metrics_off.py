"""Metrics off costs no memory: a gateway built and started with ``metrics: off`` never
imports prometheus_client (docs/performance.md); on, its registry is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys
from twisted.internet.testing import MemoryReactorClock
from aigw.config import BackendConfig, Config
from aigw.config.model import MetricsConfig
from aigw.service import GatewayService

config = Config(
    listen=("tcp:0:interface=127.0.0.1",),
    public_url="http://127.0.0.1:1975",
    mcp_path="/mcp",
    auth=None,
    backends=(BackendConfig("one", "http://127.0.0.1:3001/mcp"),),
    metrics=MetricsConfig(enabled=sys.argv[1] == "on", listen="tcp:0:interface=127.0.0.1"),
)
service = GatewayService(config, MemoryReactorClock(), log_to_stderr=False)
print(service.metrics is not None, "prometheus_client" in sys.modules)
"""


def built_and_loaded(switch: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, switch],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    return done.stdout.strip()


def test_metrics_off_never_imports_prometheus_client() -> None:
    assert built_and_loaded("off") == "False False"


def test_metrics_on_builds_them() -> None:
    assert built_and_loaded("on") == "True True"
