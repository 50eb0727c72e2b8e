"""A backend that accepts a stream's request and never sends its response head.

The head of a GET stream or a listen has the backend's ``timeout``, as every request
has (only the stream's body may last for ever): past it the attempt fails like any
upstream timeout, its connection is closed, and the feed tries again after its
back-off; the client's GET stream stays open all along.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from aigw.config import BackendConfig
from aigw.gateway.streams import BACKOFF_FIRST
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import Collect, GatewayTestCase
from tests.unit.memory import run

TIMEOUT = 5.0


class StreamHeadTests(GatewayTestCase):
    @run
    async def test_a_stream_head_that_never_comes_fails_after_the_timeout_and_is_retried(
        self,
    ) -> None:
        alpha = FakeUpstream(tools=["echo"])
        alpha.get_status = 200
        alpha.get_hold = Deferred()  # GET streams are accepted and never answered
        url = self.start_upstream(alpha)
        port = int(url.split(":")[2].split("/")[0])
        await self.start_gateway_with(BackendConfig(name="alpha", url=url, timeout=TIMEOUT))
        session = await self.initialize()
        response = await self.open_stream(session)
        self.assertEqual(response.code, 200)
        client = Collect([])
        response.deliverBody(client)
        await self.until(lambda: len(alpha.stream_requests) == 1)
        for attempt in range(1, 4):
            # Each attempt waits the timeout for its head, then the back-off doubles.
            await self.network.sleep(TIMEOUT + BACKOFF_FIRST * 2 ** (attempt - 1))
            await self.until(lambda a=attempt: len(alpha.stream_requests) == a + 1)  # type: ignore[misc]
            self.assertEqual(alpha.streams_closed, alpha.stream_requests[:attempt])
            # One connection to the backend at most holds a stream: none piles up.
            self.assertLessEqual(self.network.open_connections(port), 2)
        pool = self.service.gateway.transports["alpha"].connections  # type: ignore[attr-defined]
        self.assertEqual(len(pool._open), 1)  # the attempt under way; the others freed
        self.assertEqual(self.service.gateway.stream_limits.total, 1)  # still open
        client.transport.stopProducing()  # type: ignore[union-attr]
        await self.until(lambda: self.service.gateway.stream_limits.total == 0)
        alpha.get_hold.callback(None)
