"""``resources/subscribe`` from a session client to a 2026-07-28-only backend, carried
as the ``resourceSubscriptions`` of aigw's listen toward it (2026-07-28
basic/patterns/subscriptions), the updates delivered on the client's GET stream."""

from __future__ import annotations

from typing import Any

import treq

from aigw.gateway.resource_subscriptions import MAX_PER_BACKEND
from aigw.protocol import jsonrpc
from tests.unit.gateway.fake_upstream import FakeUpstream, sse
from tests.unit.gateway.helpers import Collect, GatewayTestCase, post_listen, sse_messages
from tests.unit.memory import run

URI = "aigw:beta/test://counter"
SUBSCRIBING = {"tools": {"listChanged": True}, "resources": {"subscribe": True}}


class SubscriptionTestCase(GatewayTestCase):
    async def start_modern(self, capabilities: dict[str, Any] | None = None) -> str:
        beta = FakeUpstream(tools=["t1"], modern=True, capabilities=capabilities or SUBSCRIBING)
        await self.start_gateway(beta=beta)
        return await self.initialize()

    async def get_stream(self, session: str) -> tuple[list[bytes], Collect]:
        response = await self.open_stream(session)
        chunks: list[bytes] = []
        reader = Collect(chunks)
        response.deliverBody(reader)
        await self.until(lambda: self.beta.listen_filters)
        return chunks, reader

    def subscribed(self) -> list[str]:
        """The resources of beta's latest listen filter."""
        return list(self.beta.listen_filters[-1].get("resourceSubscriptions", []))

    def updated(self, uri: str) -> None:
        """beta: the resource changed, on its newest listen stream."""
        tag = {"io.modelcontextprotocol/subscriptionId": 1}
        message = {
            "jsonrpc": "2.0",
            "method": "notifications/resources/updated",
            "params": {"uri": uri, "_meta": tag},
        }
        self.beta.stream_requests[-1].write(sse(message))


class SubscribeTests(SubscriptionTestCase):
    @run
    async def test_subscribe_resends_the_listen_and_updates_reach_the_get_stream(self) -> None:
        session = await self.start_modern()
        chunks, reader = await self.get_stream(session)
        self.assertEqual(self.subscribed(), [])
        body = await self.call(session, "resources/subscribe", {"uri": URI})
        self.assertEqual(body["result"], {})
        await self.until(lambda: self.subscribed() == ["test://counter"])
        self.assertNotIn("resources/subscribe", [b.get("method") for _, b in self.beta.received])
        self.updated("test://counter")
        await self.until(lambda: b"resources/updated" in b"".join(chunks))
        (update,) = [m for m in sse_messages(b"".join(chunks)) if "method" in m]
        self.assertEqual(update["params"], {"uri": URI})
        listens = len(self.beta.listen_filters)
        body = await self.call(session, "resources/unsubscribe", {"uri": URI})
        self.assertEqual(body["result"], {})
        await self.until(lambda: len(self.beta.listen_filters) == listens + 1)
        self.assertEqual(self.subscribed(), [])
        reader.transport.stopProducing()  # type: ignore[union-attr]

    @run
    async def test_a_subscription_made_before_the_get_stream_is_in_its_listen(self) -> None:
        session = await self.start_modern()
        await self.call(session, "resources/subscribe", {"uri": URI})
        _, reader = await self.get_stream(session)
        self.assertEqual(self.subscribed(), ["test://counter"])
        reader.transport.stopProducing()  # type: ignore[union-attr]

    @run
    async def test_subscriptions_are_bounded_per_session(self) -> None:
        session = await self.start_modern()
        for i in range(MAX_PER_BACKEND):
            body = await self.call(session, "resources/subscribe", {"uri": f"{URI}/{i}"})
            self.assertEqual(body["result"], {})
        body = await self.call(session, "resources/subscribe", {"uri": f"{URI}/more"})
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_REQUEST)
        self.assertEqual(body["error"]["data"]["reason"], "too_many_subscriptions")
        other = await self.initialize()  # another session has its own bound
        self.assertEqual(
            (await self.call(other, "resources/subscribe", {"uri": URI}))["result"], {}
        )

    @run
    async def test_a_backend_without_subscriptions_is_refused(self) -> None:
        """server/resources "Capabilities": ``subscribe`` says whether it offers them."""
        session = await self.start_modern({"tools": {}, "resources": {}})
        body = await self.call(session, "resources/subscribe", {"uri": URI})
        self.assertEqual(body["error"]["code"], jsonrpc.INVALID_REQUEST)
        self.assertEqual(body["error"]["data"]["reason"], "no_subscriptions")


class ModernClientTests(SubscriptionTestCase):
    @run
    async def test_a_2026_listen_over_a_2026_backend_carries_its_resources(self) -> None:
        """The client's ``resourceSubscriptions`` go into aigw's listen toward the backend,
        and its updates come back tagged with the client's own subscription."""
        await self.start_modern()
        response = await post_listen(self.http, self.url, {"resourceSubscriptions": [URI]}, "L1")
        chunks: list[bytes] = []
        done = treq.collect(response, chunks.append)
        await self.until(lambda: self.beta.listen_filters and b"acknowledged" in b"".join(chunks))
        (ack,) = sse_messages(b"".join(chunks))
        self.assertEqual(ack["params"]["notifications"], {"resourceSubscriptions": [URI]})
        self.assertEqual(self.subscribed(), ["test://counter"])
        self.updated("test://counter")
        await self.until(lambda: b"resources/updated" in b"".join(chunks))
        update = sse_messages(b"".join(chunks))[-1]
        self.assertEqual(update["params"]["uri"], URI)
        self.assertEqual(
            update["params"]["_meta"], {"io.modelcontextprotocol/subscriptionId": "L1"}
        )
        self.service.gateway.close_streams()
        await done
