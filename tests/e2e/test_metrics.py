"""Prometheus metrics end to end: real traffic through aigw, then a scrape of ``/metrics``.

Authorization server: oidc-provider (``e2e/as.mjs``); client: the official MCP
Python SDK with ``OAuthClientProvider``; upstream: a server written with the
``mcp`` SDK.  The scrape must count exactly what was sent, and name no user,
session or token in any label (issue 12, items 1 and 8).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from .aigw import Gateway, start_gateway
from .harness.authserver import AuthServer
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

CALLS = 3
#: The one tool the access policy refuses (it exists upstream).
DENIED_TOOL = "slow-stats"
ACCESS = f"access:\n  rules:\n    - effect: deny\n      tools: [{DENIED_TOOL}]\n"


@pytest.fixture(scope="module")
def gateway(auth_server: AuthServer, pyserver: Upstream) -> Iterator[Gateway]:
    started = start_gateway(
        [("py", pyserver.url)], issuer=auth_server.issuer, extra=ACCESS, metrics=True
    )
    try:
        yield started
    finally:
        started.stop()


async def test_a_scrape_counts_the_traffic_and_names_no_one(gateway: Gateway) -> None:
    storage = MemoryTokenStorage()
    async with connect(gateway.url, "alice", storage=storage, mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "py__echo" in names
        assert f"py__{DENIED_TOOL}" not in names
        for i in range(CALLS):
            assert text_of(await client.call_tool("py__echo", {"text": f"n{i}"})) == f"n{i}"
        with pytest.raises(MCPError):
            await client.call_tool(f"py__{DENIED_TOOL}", {})
        # Forwarded (the name is the backend's to judge), answered as a tool error.
        assert (await client.call_tool("py__no-such-tool", {})).is_error
    bad = httpx2.post(
        gateway.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={
            "Authorization": "Bearer not-a-token",
            "Accept": "application/json, text/event-stream",
        },
        timeout=10,
    )
    assert bad.status_code == 401

    scrape = gateway.scrape()
    assert scrape.content_type.startswith("text/plain")
    text, samples, value = scrape.text, scrape.samples, scrape.value
    requests = "aigw_mcp_requests_total"
    call = {"method": "tools/call", "backend": "py"}
    assert value(requests, **call, tool="echo", outcome="ok") == CALLS
    assert value(requests, **call, tool=DENIED_TOOL, outcome="denied") == 1
    # A name the backend never listed is no label: made-up names cannot make series.
    assert value(requests, **call, tool="other", outcome="ok") == 1
    assert not any(dict(labels).get("tool") == "no-such-tool" for _, labels in samples)
    assert value(requests, method="tools/list", backend="", tool="", outcome="ok") == 1
    assert value(requests, method="initialize", backend="", tool="", outcome="ok") == 1
    decisions = "aigw_access_decisions_total"
    assert value(decisions, backend="py", decision="denied", rule="access.rules[0]") == 1

    # Latency: the whole request, the part in aigw, the part upstream (only calls that went).
    calls_timed = CALLS + 2
    duration = "aigw_mcp_request_duration_seconds"
    assert value(duration + "_count", method="tools/call") == calls_timed
    assert value(duration + "_bucket", method="tools/call", le="+Inf") == calls_timed
    assert (value("aigw_mcp_gateway_seconds_count") or 0) >= calls_timed + 2
    assert value("aigw_mcp_upstream_seconds_count", backend="py") == CALLS + 1

    # The bad token, and the SDK's first request (no token yet: how it finds the AS).
    refusals = "aigw_auth_refusals_total"
    assert value(refusals, status="401", reason="malformed") == 1
    assert (value(refusals, status="401", reason="missing") or 0) >= 1
    http = "aigw_http_requests_total"
    assert (value(http, route="mcp", status="200") or 0) >= CALLS + 4
    assert (value(http, route="mcp", status="401") or 0) >= 2
    assert (value(http, route="metadata", status="200") or 0) >= 1

    # The authorization server and the backends.
    assert (value("aigw_jwks_fetches_total", outcome="success") or 0) >= 1
    assert value("aigw_jwks_fetches_total", outcome="failure") == 0
    assert value("aigw_introspection_requests_total", outcome="success") == 0
    age = value("aigw_signing_keys_age_seconds")
    assert age is not None
    assert math.isfinite(age)
    assert age >= 0
    connections = "aigw_upstream_connections_total"
    assert (value(connections, backend="py", state="opened") or 0) >= 1
    assert value(connections, backend="py", state="failed") == 0

    # Gauges, reloads, the build, the process.
    for gauge in ("aigw_open_streams", "aigw_streaming_sessions", "aigw_pooled_upstream_sessions"):
        assert value(gauge) is not None, gauge
    assert value("aigw_config_reloads_total", outcome="failure") == 0
    assert (value("aigw_config_last_reload_success_timestamp_seconds") or 0) > 0
    assert (value("process_resident_memory_bytes") or 0) > 0

    # Bounded labels: never the user, the client, a session or a token.
    assert storage.tokens is not None
    assert storage.client_info is not None
    secrets = {
        "alice",
        "alice@example.test",
        storage.tokens.access_token,
        str(storage.client_info.client_id),
    }
    if storage.tokens.refresh_token:
        secrets.add(storage.tokens.refresh_token)
    label_values = {v for _, labels in samples for _, v in labels}
    for secret in secrets:
        assert not any(secret in v for v in label_values), secret
    assert "not-a-token" not in text
    assert "mcp-session-id" not in text.lower()
