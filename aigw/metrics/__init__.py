"""Prometheus metrics of the gateway, in their own registry, on their own listener.

- ``observer.GatewayMetrics``: a ``GatewayObserver`` that counts requests,
  decisions, refusals and connections, plus methods and gauges for the rest;
- ``labels``: every label value bounded (no principal, session or token, ever);
- ``listener``: the ``/metrics`` resource and the site that serves it.

A shared piece: it imports none of aigw's layers, so any of them can report.
"""

from aigw.metrics.labels import HTTPRoutes, Route, ToolAllowed
from aigw.metrics.listener import metrics_resource, metrics_site
from aigw.metrics.observer import GatewayMetrics
from aigw.metrics.registry import new_registry

__all__ = [
    "GatewayMetrics",
    "HTTPRoutes",
    "Route",
    "ToolAllowed",
    "metrics_resource",
    "metrics_site",
    "new_registry",
]
