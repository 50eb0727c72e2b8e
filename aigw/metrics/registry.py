"""The registry every aigw metric goes to, one per ``GatewayMetrics``.

Never prometheus_client's global ``REGISTRY``: tests, and several gateways in
one process, would share (and collide on) its series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector


def new_registry() -> CollectorRegistry:
    """An empty registry with the process (CPU, memory, open files), Python platform
    and garbage collector metrics, all read at scrape time only."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
