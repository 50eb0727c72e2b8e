"""``max_connections`` bounds the requests a backend has in flight: the others wait."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig
from aigw.upstream.client import Reply, Upstream


class SlotTests(SynchronousTestCase):
    def test_requests_beyond_max_connections_wait_for_a_slot(self) -> None:
        upstream = Upstream(
            BackendConfig("one", "http://127.0.0.1:3001/mcp", max_connections=2),
            MemoryReactorClock(),
        )
        sent: list[Deferred[Reply]] = []

        async def send_now(*_: Any, **__: Any) -> Any:
            answered: Deferred[Reply] = Deferred()
            sent.append(answered)
            return await answered  # stands for the response: read_now hands it back

        async def read_now(response: Any, *_: Any, **__: Any) -> Any:
            return response

        upstream._send = send_now  # type: ignore[method-assign]
        upstream._read = read_now  # type: ignore[method-assign]
        posts = [ensureDeferred(upstream.post(b"{}", lambda _: None)) for _ in range(3)]
        self.assertEqual(len(sent), 2)  # the third waits
        sent[0].callback(Reply(200, None, "application/json"))
        self.assertEqual(len(sent), 3)  # it took the freed slot
        self.successResultOf(posts[0])
        sent[1].errback(RuntimeError("gone"))
        self.failureResultOf(posts[1], RuntimeError)
        sent[2].callback(Reply(200, None, "application/json"))
        self.successResultOf(posts[2])
        # every slot was given back, failures included
        self.assertEqual(upstream._slots.tokens, 2)
