"""metrics.listener: the registry served on its own endpoint, in the format asked for."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import getChildForRequest
from twisted.web.test.requesthelper import DummyRequest

from aigw.metrics import metrics_resource, metrics_site
from aigw.metrics.listener import MetricsResource, MetricsSite


def registry_with_a_counter() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("aigw_test_total", "A counter.", registry=registry).inc(3)
    return registry


class ResourceTests(SynchronousTestCase):
    def render(self, path: bytes, accept: bytes | None = None) -> DummyRequest:
        request = DummyRequest(path.lstrip(b"/").split(b"/"))
        if accept is not None:
            request.requestHeaders.addRawHeader(b"accept", accept)
        resource = getChildForRequest(metrics_resource(registry_with_a_counter()), request)
        body = resource.render(request)
        request.write(body)
        request.finish()
        return request

    def test_prometheus_text_format_by_default(self) -> None:
        request = self.render(b"/metrics")
        content_type = request.responseHeaders.getRawHeaders(b"content-type")
        self.assertEqual(content_type, [CONTENT_TYPE_PLAIN_0_0_4.encode()])
        self.assertIn(
            b"# TYPE aigw_test_total counter\naigw_test_total 3.0\n", b"".join(request.written)
        )

    def test_openmetrics_when_asked_for(self) -> None:
        request = self.render(b"/metrics", b"application/openmetrics-text; version=1.0.0")
        content_type = request.responseHeaders.getRawHeaders(b"content-type")[0]
        self.assertTrue(content_type.startswith(OPENMETRICS.split(";")[0].encode()), content_type)
        self.assertTrue(b"".join(request.written).endswith(b"# EOF\n"))

    def test_nothing_else_is_served(self) -> None:
        for path in (b"/", b"/metricsx", b"/healthz"):
            request = DummyRequest(path.lstrip(b"/").split(b"/"))
            resource = getChildForRequest(metrics_resource(CollectorRegistry()), request)
            self.assertFalse(isinstance(resource, MetricsResource), path)
            resource.render(request)
            self.assertEqual(request.responseCode, 404)


class SiteTests(SynchronousTestCase):
    def test_a_quiet_site(self) -> None:
        site = metrics_site(CollectorRegistry(), MemoryReactorClock())
        self.assertIsInstance(site, MetricsSite)
        self.assertFalse(site.noisy)

    def test_a_scrape_over_http(self) -> None:
        reactor = MemoryReactorClock()
        site = metrics_site(registry_with_a_counter(), reactor)
        site.startFactory()
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        response = transport.value()
        self.assertTrue(response.startswith(b"HTTP/1.1 200 OK\r\n"), response[:40])
        self.assertIn(b"aigw_test_total 3.0", response)
        channel.connectionLost(None)
        site.stopFactory()
        # No access log, and no date timer left behind.
        self.assertEqual(reactor.getDelayedCalls(), [])
