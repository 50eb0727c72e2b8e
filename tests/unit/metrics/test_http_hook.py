"""The client site tells the metrics each request's path and status (BoundedSite's hook)."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from aigw.config import ServerConfig
from aigw.metrics import GatewayMetrics
from aigw.web.server import BoundedSite


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        return b"hello"


def send(site: BoundedSite, data: bytes) -> bytes:
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 12345))
    assert channel is not None
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(data)
    return transport.value()


class HookTests(SynchronousTestCase):
    def test_every_request_answered_is_reported(self) -> None:
        finished: list[tuple[bytes, int]] = []
        site = BoundedSite(
            Hello(),
            ServerConfig(max_body_bytes=10),
            Clock(),
            access_log=False,
            on_request_finished=lambda path, status: finished.append((path, status)),
        )
        send(site, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        send(site, b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n")
        # Refused before the request was parsed: no path yet (the access log has none either).
        self.assertEqual(finished, [(b"/healthz", 200), (b"", 413)])

    def test_into_the_http_counters(self) -> None:
        metrics = GatewayMetrics([], lambda backend, name: False)
        site = BoundedSite(
            Hello(), ServerConfig(), Clock(), on_request_finished=metrics.http_observer("/mcp")
        )
        send(site, b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
        value = metrics.registry.get_sample_value(
            "aigw_http_requests_total", {"route": "readyz", "status": "200"}
        )
        self.assertEqual(value, 1.0)
