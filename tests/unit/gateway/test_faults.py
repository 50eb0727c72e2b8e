"""Clients hanging up mid-call leak nothing (issue 16 item 5), counted on the memory reactor.

Fifty clients each start a ``tools/call`` that the MCP server holds, read its
first bytes, and hang up.  Afterwards every one was cancelled upstream, and the
reactor's delayed calls, the open upstream connections and the live Deferreds
are back where they were before: nothing waits for a client that is gone.
The real processes' version (the cancellation reaching a real upstream) is in
tests/e2e/test_faults.py.
"""

from __future__ import annotations

import gc

from twisted.internet.defer import Deferred

from tests.unit.gateway.helpers import GatewayTestCase, HangUp
from tests.unit.memory import run

CLIENTS = 50


def live_deferreds() -> int:
    gc.collect()
    return sum(isinstance(o, Deferred) for o in gc.get_objects())


class DisconnectionLeakTests(GatewayTestCase):
    def snapshot(self) -> tuple[int, int]:
        """The reactor's delayed calls, and the connections open to the MCP server."""
        alpha = int(self.service.config.backends[0].url.rsplit(":", 1)[1].split("/", 1)[0])
        return len(self.reactor.getDelayedCalls()), self.network.open_connections(alpha)

    async def quiet(self) -> None:
        """Past every idle timer a call may arm (client and upstream connections)."""
        await self.network.sleep(300)
        await self.network.settle()

    @run
    async def test_fifty_clients_hanging_up_mid_call_leak_nothing(self) -> None:
        """50 clients hang up while the MCP server holds their `tools/call`
        (basic/utilities/cancellation).

        expected: each call cancelled upstream (`notifications/cancelled`); delayed calls,
        open upstream connections and live Deferreds back to their count before
        """
        await self.start_gateway()
        session = await self.initialize()
        # One call first, so the pools and caches a first call fills are filled.
        await self.call(session, "tools/call", {"name": "alpha__echo", "arguments": {}})
        await self.quiet()
        before, deferreds = self.snapshot(), live_deferreds()
        self.alpha.hold = Deferred()
        for number in range(CLIENTS):
            response = await self.stream_call(session, 100 + number, {"name": "alpha__progress"})
            reader = HangUp()
            response.deliverBody(reader)
            await reader.got
        del response, reader  # the test's own references
        await self.network.settle()
        cancelled = {
            body["params"]["requestId"]
            for _, body in self.alpha.received
            if body.get("method") == "notifications/cancelled"
        }
        self.assertEqual(len(cancelled), CLIENTS)
        self.alpha.hold.callback(None)
        self.alpha.hold = None
        await self.quiet()
        self.assertEqual(self.snapshot(), before)
        self.assertLessEqual(live_deferreds(), deferreds)
