"""SIGTERM with a call in flight: the call finishes, then the daemon exits 0."""

from __future__ import annotations

import json
import signal

import anyio
import anyio.to_thread
import httpx2
import pytest

from .aigw import INITIALIZE, start_gateway
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_sigterm_drains_in_flight_requests_then_exits_0(pyserver: Upstream) -> None:
    gateway = start_gateway([("py", pyserver.url)])
    try:
        async with httpx2.AsyncClient(timeout=30) as http:
            opened = await http.post(
                gateway.url,
                headers=HEADERS,
                json=INITIALIZE,
            )
            headers = {
                **HEADERS,
                "Mcp-Session-Id": opened.headers["mcp-session-id"],
                "MCP-Protocol-Version": "2025-11-25",
            }
            replies: list[httpx2.Response] = []

            async def slow_call() -> None:
                replies.append(
                    await http.post(
                        gateway.url,
                        headers=headers,
                        json={
                            "jsonrpc": "2.0",
                            "id": 2,
                            "method": "tools/call",
                            "params": {
                                "name": "py__slow",
                                "arguments": {"seconds": 1.5, "steps": 3},
                            },
                        },
                    )
                )

            async with anyio.create_task_group() as group:
                group.start_soon(slow_call)
                await anyio.sleep(0.5)
                gateway.process.popen.send_signal(signal.SIGTERM)
        (reply,) = replies
        assert reply.status_code == 200
        assert "slept 1.5s" in json.dumps(reply.text)
        code = await anyio.to_thread.run_sync(gateway.process.popen.wait, 20)
        assert code == 0, gateway.process.log_tail()
        log = gateway.process.log()
        assert "draining in-flight requests" in log
        assert "Traceback" not in log
    finally:
        gateway.stop()
