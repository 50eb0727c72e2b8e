"""The metrics listener: ``GET /metrics`` on its own endpoint (``metrics.listen``).

A listener apart from the clients': it needs no token, and it should be
reachable only from the monitoring side (default ``tcp:9464:interface=127.0.0.1``).
The service tree listens with ``metrics_site`` as it does for clients, so a
port it cannot bind stops the daemon the same way (``service.ListenerService``).

prometheus_client's own ``twisted.MetricsResource`` is not used: it renders in
the global reactor's thread pool, and the lock-free series (``lockfree``) are
read on the thread that counts them, the reactor's.  A scrape holds the
reactor for as long as it renders: 0.3 ms for a fresh gateway, about 7 µs a
series (60 ms for 8,000: 20 backends of 200 tools, two outcomes each).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from twisted.internet.interfaces import IReactorCore
from twisted.web.iweb import IRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

#: Prometheus keeps its scrape connection open between scrapes (15 s by default).
IDLE_TIMEOUT = 120


class MetricsResource(Resource):
    """The registry in the exposition format the scraper asks for (``Accept``):
    OpenMetrics, or the Prometheus text format by default."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        accept = request.getHeader(b"accept")
        encode, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return encode(self._registry)


class _Root(Resource):
    """Nothing but its children: anything else is a plain 404."""

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        return notFound()


def metrics_resource(registry: CollectorRegistry) -> IResource:
    """The resource tree of the listener: ``/metrics`` only."""
    root = _Root()  # type: ignore[no-untyped-call]  # Resource.__init__ is untyped
    root.putChild(b"metrics", MetricsResource(registry))
    return root


class MetricsSite(Site):
    """A ``Site`` that does not log: a scrape every few seconds is not news."""

    def log(self, request: Request) -> None:  # type: ignore[override]
        """Scrapes are not logged."""

    def startFactory(self) -> None:
        """No access-log file and no once-a-second date timer (see ``log``)."""

    def stopFactory(self) -> None:
        """Nothing to close: see ``startFactory``."""


def metrics_site(registry: CollectorRegistry, reactor: IReactorCore) -> Site:
    """The HTTP factory of the listener, for an endpoint of the caller's own."""
    site = MetricsSite(metrics_resource(registry), timeout=IDLE_TIMEOUT, reactor=reactor)  # type: ignore[no-untyped-call]
    site.noisy = False
    return site
