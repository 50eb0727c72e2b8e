"""The metrics as GatewayService wires them: the real gateway, scraped on its listener.

Everything runs on the memory network (tests/unit/memory.py): the gateway's
``metrics.listen`` (127.0.0.1:9464 by default) is a listener there like its own.
"""

from __future__ import annotations

import treq

from aigw.config import AuditConfig, BackendConfig, MetricsConfig, SessionsConfig
from aigw.config.limits import LimitRule, LimitsConfig, Rate
from aigw.config.redis import RedisAddress
from aigw.gateway.linger import MAX_HELD
from aigw.gateway.ratelimit import Limiter
from aigw.gateway.stream_probes import OUTCOMES
from tests.prometheus_text import Scrape
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import Collect, GatewayTestCase
from tests.unit.memory import run

SCRAPE = "http://127.0.0.1:9464/metrics"


async def scrape(test: GatewayTestCase) -> Scrape:
    """A scrape of the gateway's metrics listener."""
    response = await test.http.get(SCRAPE)
    test.assertEqual(response.code, 200)
    content_type = response.headers.getRawHeaders(b"content-type", [b""])[0].decode()
    return Scrape.parse(content_type, (await treq.content(response)).decode())


class WiringTests(GatewayTestCase):
    @run
    async def test_a_tool_name_no_utf8_holds_leaves_the_scrape_whole(self) -> None:
        """A backend's tool named with a lone surrogate (valid JSON text), called: its
        label is escaped; before, every scrape raised in the exposition's UTF-8
        encoding (a traceback, /metrics answering nothing) until a restart."""
        upstream = FakeUpstream(tools=["ad\ud800d"])
        await self.start_gateway_with(
            BackendConfig(name="alpha", url=self.start_upstream(upstream))
        )
        session = await self.initialize()
        [name] = await self.tool_names(session)
        self.assertIn("result", await self.call_tool(session, name))
        samples = await scrape(self)
        call = {"method": "tools/call", "backend": "alpha", "tool": "ad\\ud800d", "outcome": "ok"}
        self.assertEqual(samples.value("aigw_mcp_requests_total", **call), 1.0)

    @run
    async def test_requests_calls_and_gauges_on_the_metrics_listener(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        await self.call(session, "tools/call", {"name": "alpha__echo"})  # before any listing
        await self.call(session, "tools/list")
        for rid in range(3):
            await self.call(session, "tools/call", {"name": "alpha__echo"}, rid)
        await self.call(session, "tools/call", {"name": "alpha__made-up"})
        await self.call(session, "tools/call", {"name": "alpha__secret"})  # excluded
        stream = Collect([])
        (await self.open_stream(session)).deliverBody(stream)
        await self.network.settle()
        samples = await scrape(self)
        call = {"method": "tools/call", "backend": "alpha"}
        self.assertEqual(
            samples.value("aigw_mcp_requests_total", **call, tool="echo", outcome="ok"),
            3.0,
        )
        # A tool is a label once listed: before that, and a made-up one, are "other".
        other = {"method": "tools/call", "backend": "alpha", "tool": "other"}
        self.assertEqual(samples.value("aigw_mcp_requests_total", **other, outcome="ok"), 1.0)
        # An excluded tool is answered as unknown: routed nowhere, no backend, no tool.
        refused = {"method": "tools/call", "backend": "", "tool": "", "outcome": "error"}
        self.assertEqual(samples.value("aigw_mcp_requests_total", **refused), 1.0)
        self.assertEqual(samples.value("aigw_http_requests_total", route="mcp", status="200"), 8.0)
        # Time stands still on the memory network: every request took 0 s.
        self.assertEqual(
            samples.value("aigw_mcp_request_duration_seconds_count", method="tools/call"),
            6.0,
        )
        self.assertEqual(samples.value("aigw_open_streams"), 1.0)
        self.assertEqual(samples.value("aigw_streaming_sessions"), 1.0)
        self.assertEqual(samples.value("aigw_pooled_upstream_sessions"), 0.0)
        stream.transport.stopProducing()  # type: ignore[attr-defined]
        await self.until(lambda: self.service.gateway.stream_limits.total == 0)
        samples = await scrape(self)
        self.assertEqual(samples.value("aigw_open_streams"), 0.0)

    @run
    async def test_off_means_no_listener_and_no_observer(self) -> None:
        await self.start_gateway(metrics=MetricsConfig(enabled=False))
        self.assertIsNone(self.service.metrics)
        self.assertNotIn(9464, [port for port, *_ in self.reactor.tcpServers])
        self.assertIsNone(self.service.site.on_request_finished)

    @run
    async def test_on_its_own_endpoint(self) -> None:
        await self.start_gateway(metrics=MetricsConfig(listen="tcp:9100:interface=127.0.0.1"))
        ports = [(port, interface) for port, _, _, interface in self.reactor.tcpServers]
        self.assertIn((9100, "127.0.0.1"), ports)
        self.assertNotIn((9464, "127.0.0.1"), ports)

    @run
    async def test_messages_a_lingering_stream_dropped_are_counted(self) -> None:
        await self.start_gateway()
        self.alpha.get_status = 200
        session = await self.initialize()
        stream = Collect([])
        (await self.open_stream(session)).deliverBody(stream)
        await self.until(lambda: self.alpha.stream_requests)
        stream.transport.stopProducing()  # type: ignore[attr-defined]
        await self.until(lambda: self.service.gateway.stream_limits.total == 0)
        for n in range(MAX_HELD + 2):
            self.alpha.push({"jsonrpc": "2.0", "method": "notifications/message", "params": n})
        await self.network.settle()
        samples = await scrape(self)
        self.assertEqual(samples.value("aigw_stream_linger_dropped_messages_total"), 2.0)

    @run
    async def test_audit_events_the_file_could_not_take_are_counted(self) -> None:
        """``audit.file: /dev/full`` (ENOSPC): the call's decision and end are counted,
        and the file shows as not writable; a gateway without the file has neither."""
        await self.start_gateway(audit=AuditConfig(file="/dev/full"))
        session = await self.initialize()
        await self.call(session, "tools/call", {"name": "alpha__echo"})
        samples = await scrape(self)
        self.assertEqual(samples.value("aigw_audit_write_errors_total"), 2.0)
        self.assertEqual(samples.value("aigw_audit_file_writable"), 0.0)

    @run
    async def test_no_audit_file_no_audit_file_metrics(self) -> None:
        await self.start_gateway()
        samples = await scrape(self)
        self.assertIsNone(samples.value("aigw_audit_write_errors_total"))

    @run
    async def test_a_last_event_id_that_does_not_open_is_counted(self) -> None:
        """A forged ``Last-Event-ID`` (sealed/event_id.py): the stream opens, every
        backend from nowhere, and the refusal is counted."""
        await self.start_gateway()
        self.alpha.get_status = 200
        session = await self.initialize()
        stream = Collect([])
        (await self.open_stream(session, "forged-by-the-client")).deliverBody(stream)
        await self.until(lambda: self.alpha.stream_requests)
        self.assertIsNone(self.alpha.stream_requests[0].getHeader(b"last-event-id"))
        samples = await scrape(self)
        self.assertEqual(samples.value("aigw_refused_event_ids_total"), 1.0)
        stream.transport.stopProducing()  # type: ignore[attr-defined]

    @run
    async def test_the_probe_of_a_held_stream_is_counted(self) -> None:
        """A second GET of a session probes the first (gateway/stream_probes.py), which
        lives: the GET is refused and the probe counted, the other outcomes at zero."""
        await self.start_gateway()
        self.alpha.get_status = 200
        session = await self.initialize()
        held = Collect([])
        (await self.open_stream(session)).deliverBody(held)
        second = await self.open_stream(session)
        await treq.content(second)
        self.assertEqual(second.code, 409)
        samples = await scrape(self)
        for where, outcome in OUTCOMES:
            self.assertEqual(
                samples.value("aigw_stream_probes_total", where=where, outcome=outcome),
                1.0 if (where, outcome) == ("here", "alive") else 0.0,
            )
        held.transport.stopProducing()  # type: ignore[attr-defined]
        await self.until(lambda: self.service.gateway.stream_limits.total == 0)


class LimitMetricsTests(GatewayTestCase):
    @run
    async def test_limited_requests_and_store_failures_are_counted(self) -> None:
        rules = (LimitRule(per="sub", rate=Rate(1, 60.0)),)
        # Nothing listens on port 1: the store fails, and fails open.
        unreachable = LimitsConfig(redis_url=RedisAddress("127.0.0.1", 1), rules=rules)
        await self.start_gateway(limits=unreachable)
        session = await self.initialize()
        for rid in range(2):
            await self.call(session, "tools/list", rid=rid)
        samples = await scrape(self)
        self.assertEqual(samples.value("aigw_limiter_store_failures_total"), 2.0)
        self.service.gateway.limiter = self.service.gateway.calls.limiter = Limiter(
            LimitsConfig(rules=rules), self.reactor
        )
        listing = {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}
        codes = [(await self.post(listing, session))[0].code for _ in range(2)]
        self.assertEqual(codes, [200, 429])
        limited = {"method": "tools/list", "backend": "", "tool": "", "outcome": "limited"}
        samples = await scrape(self)
        self.assertEqual(samples.value("aigw_mcp_requests_total", **limited), 1.0)


class SessionStoreMetricsTests(GatewayTestCase):
    @run
    async def test_failures_of_the_ended_sessions_store_are_counted(self) -> None:
        """Nothing listens on port 1: the subscription fails, and so does telling the
        others of a DELETE; the DELETE itself is answered all the same."""
        unreachable = SessionsConfig(redis_url=RedisAddress("127.0.0.1", 1))
        await self.start_gateway(sessions=unreachable)
        session = await self.initialize()
        response = await self.http.delete(self.url, headers={"Mcp-Session-Id": [session]})
        await treq.content(response)
        self.assertEqual(response.code, 204)
        await self.network.settle()
        samples = await scrape(self)
        self.assertEqual(samples.value("aigw_session_store_failures_total"), 2.0)

    @run
    async def test_the_counter_is_there_without_redis(self) -> None:
        await self.start_gateway()
        self.assertEqual((await scrape(self)).value("aigw_session_store_failures_total"), 0.0)
