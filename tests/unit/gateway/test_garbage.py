"""A relayed call leaves nothing to the cyclic garbage collector: each exchange's objects
are freed by reference counting as soon as it ends (docs/performance.md, "Reference
cycles": in cycles, every request's objects waited for a collection, and 32 requests in
flight grew the process by 8 MiB)."""

from __future__ import annotations

import gc
from typing import Any

from aigw.gateway.exchange import Collector
from aigw.upstream.client import _BodyReader
from aigw.upstream.connection import UpstreamResponse
from aigw.web.server import BoundedRequest
from tests.unit.gateway.helpers import GatewayTestCase
from tests.unit.memory import run

#: What one relayed call makes, from the client's request to the upstream's reply.
EXCHANGE_TYPES = (BoundedRequest, Collector, _BodyReader, UpstreamResponse)


class GarbageTests(GatewayTestCase):
    def cyclic_garbage(self) -> list[Any]:
        """The exchange objects only the cyclic collector would have freed since the last
        call (``DEBUG_SAVEALL`` keeps what it finds, instead of freeing it)."""
        gc.collect()
        found = [o for o in gc.garbage if isinstance(o, EXCHANGE_TYPES)]
        gc.garbage.clear()
        return found

    @run
    async def test_a_relayed_call_is_freed_without_the_garbage_collector(self) -> None:
        await self.start_gateway()
        session = await self.initialize()
        call = {"name": "alpha__echo", "arguments": {"message": "hi"}}
        await self.call(session, "tools/call", call)  # warm: connections, token cache
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        self.addCleanup(gc.set_debug, 0)
        self.addCleanup(gc.garbage.clear)
        self.cyclic_garbage()
        for rid in range(2, 5):
            answer = await self.call(session, "tools/call", call, rid=rid)
            self.assertIn("result", answer)
        self.assertEqual(self.cyclic_garbage(), [])
