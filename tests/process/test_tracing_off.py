"""Tracing off costs no memory: a gateway built and started without ``tracing`` never
imports OpenTelemetry (docs/performance.md); with it, the tracer is OpenTelemetry's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys
from twisted.internet.testing import MemoryReactorClock
from aigw.config import BackendConfig, Config, TracingConfig
from aigw.service import GatewayService

tracing = TracingConfig("http://127.0.0.1:4318/v1/traces") if sys.argv[1] == "on" else None
config = Config(
    listen=("tcp:0:interface=127.0.0.1",),
    public_url="http://127.0.0.1:1975",
    mcp_path="/mcp",
    auth=None,
    backends=(BackendConfig("one", "http://127.0.0.1:3001/mcp"),),
    tracing=tracing,
)
service = GatewayService(config, MemoryReactorClock(), log_to_stderr=False)
loaded = any(m.startswith("opentelemetry") for m in sys.modules)
print(type(service.gateway.tracer).__name__, loaded)
"""


def tracer_and_loaded(switch: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, switch],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    return done.stdout.strip()


def test_tracing_off_never_imports_opentelemetry() -> None:
    assert tracer_and_loaded("off") == "NoTracer False"


def test_tracing_on_builds_an_opentelemetry_tracer() -> None:
    assert tracer_and_loaded("on") == "OTelTracer True"
