"""Bounds on open server-to-client streams, and upstream streams shared between them.

2025-11-25 basic/transports "Listening for Messages from the Server" and
"Multiple Connections"; 2026-07-28 basic/patterns/subscriptions and
basic/transports/streamable-http.  Every wait is a bounded poll of the
gateway's own state: nothing depends on timing.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import treq
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import ServerConfig, SessionsConfig
from aigw.config.limits import LimitsConfig
from aigw.config.redis import RedisAddress
from aigw.gateway.limits import StreamLimitReached, StreamLimits, StreamSlot, UserKey
from aigw.protocol import jsonrpc
from aigw.web.respond import stream_limit_refusal
from tests.unit.gateway.fake_redis import FakeRedis
from tests.unit.gateway.helpers import (
    SHARED_KEY,
    Collect,
    GatewayTestCase,
    hs256_auth,
    initialize_message,
    post_listen,
    sse_messages,
    token,
)
from tests.unit.memory import run


class StreamLimitsTests(SynchronousTestCase):
    """The counts alone, in this process (no shared store: nothing is awaited)."""

    def acquire(
        self, limits: StreamLimits, user: UserKey, session: str | None = None
    ) -> StreamSlot:
        return self.successResultOf(ensureDeferred(limits.acquire(user, session)))

    def refused(
        self, limits: StreamLimits, user: UserKey, session: str | None = None
    ) -> StreamLimitReached:
        failure = self.failureResultOf(
            ensureDeferred(limits.acquire(user, session)), StreamLimitReached
        )
        assert isinstance(failure.value, StreamLimitReached)
        return failure.value

    def test_each_bound_refuses_with_its_status_and_key(self) -> None:
        limits = StreamLimits(max_streams=3, max_per_user=2)
        self.acquire(limits, ("i", "alice"), "s1")
        same_session = self.refused(limits, ("i", "alice"), "s1")
        self.assertEqual((same_session.status, same_session.key), (409, "session"))
        self.acquire(limits, ("i", "alice"))
        user = self.refused(limits, ("i", "alice"))
        self.assertEqual(user.status, 429)
        self.assertEqual(user.key, "sessions.max_streams_per_user")
        self.acquire(limits, ("i", "bob"))  # another user is not bound by alice's streams
        total = self.refused(limits, ("i", "carol"))
        self.assertEqual((total.status, total.key), (503, "server.max_streams"))

    def test_release_is_idempotent_and_leaves_no_keys(self) -> None:
        limits = StreamLimits(max_streams=10, max_per_user=1)
        slot = self.acquire(limits, ("i", "alice"), "s1")
        slot.release()
        slot.release()
        self.assertEqual(
            (limits.total, dict(limits.per_user), dict(limits.per_session)), (0, {}, {})
        )
        self.acquire(limits, ("i", "alice"), "s1").release()

    def test_refusal_carries_retry_after_and_a_json_rpc_error(self) -> None:
        limits = StreamLimits(max_streams=10, max_per_user=1)
        self.acquire(limits, ("i", "alice"))
        refusal = stream_limit_refusal(self.refused(limits, ("i", "alice")), "L1")
        self.assertEqual(refusal.status, 429)
        self.assertEqual(refusal.headers, {b"Retry-After": b"10"})
        self.assertEqual(refusal.request_id, "L1")
        error = refusal.to_error()
        self.assertEqual(error["code"], jsonrpc.TOO_MANY_STREAMS)
        self.assertEqual(error["data"], {"limit": "sessions.max_streams_per_user", "max": 1})


class LimitTestCase(GatewayTestCase):
    async def start_limited(self, per_user: int = 8, total: int = 1024, auth: bool = False) -> None:
        overrides: dict[str, Any] = {
            "sessions": SessionsConfig(max_streams_per_user=per_user),
            "server": attrs.evolve(ServerConfig(), max_streams=total),
        }
        if auth:
            overrides["auth"] = hs256_auth()
        await self.start_gateway(**overrides)
        self.alpha.get_status = 200
        self.limits = self.service.gateway.stream_limits

    def token(self, subject: str) -> str:
        return token(subject, self.reactor.seconds())

    async def session_of(self, user: str | None = None) -> str:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else None
        response, body = await self.post(initialize_message(), headers=headers)
        self.assertEqual(response.code, 200, body)
        session: str = response.headers.getRawHeaders(b"mcp-session-id")[0].decode()
        return session

    async def get(self, session: str, user: str | None = None) -> Any:
        headers = {
            "Accept": ["text/event-stream"],
            "Mcp-Session-Id": [session],
            "MCP-Protocol-Version": ["2025-11-25"],
        }
        if user:
            headers["Authorization"] = [f"Bearer {self.token(user)}"]
        return await self.http.get(self.url, headers=headers, unbuffered=True)

    async def opened(self, session: str, user: str | None = None) -> Collect:
        response = await self.get(session, user)
        self.assertEqual(response.code, 200)
        reader = Collect([])
        response.deliverBody(reader)
        return reader

    async def refused(self, response: Any, status: int) -> dict[str, Any]:
        self.assertEqual(response.code, status)
        body: dict[str, Any] = json.loads(await treq.content(response))
        self.assertEqual(body["error"]["code"], jsonrpc.TOO_MANY_STREAMS)
        return body

    def listen(self, rid: str) -> Deferred[Any]:
        """POST subscriptions/listen; the response comes back before its body is read."""
        result: Deferred[Any] = post_listen(self.http, self.url, {"toolsListChanged": True}, rid)
        return result

    async def lost_at_next_write(self, session: str) -> Collect:
        """The session's GET stream, whose client then goes away unseen: like a proxy
        that notices it only at a write (HAProxy without abortonclose), the next write
        to the stream closes its connection."""
        first = await self.opened(session)
        [held] = self.service.gateway.open_streams
        transport = held.write.__self__.channel.transport
        held.write = lambda data: transport.loseConnection()
        return first

    def held_binding(self) -> str:
        """The binding of the session of the one open GET stream (its count's key)."""
        [held] = self.service.gateway.open_streams
        binding: str = held.session.binding
        return binding


class GetStreamLimitTests(LimitTestCase):
    @run
    async def test_second_get_stream_of_a_session_is_a_conflict_until_the_first_ends(self) -> None:
        """One GET stream per session, refused like MCP SDK servers refuse a second (409);
        the slot is free again once the client closes the first."""
        await self.start_limited()
        session = await self.session_of()
        first = await self.opened(session)
        body = await self.refused(await self.get(session), 409)
        self.assertEqual(body["error"]["data"]["limit"], "session")
        first.transport.stopProducing()  # type: ignore[attr-defined]
        await self.until(lambda: self.limits.total == 0)
        again = await self.opened(session)
        again.transport.stopProducing()  # type: ignore[attr-defined]
        await self.until(lambda: self.limits.total == 0)

    @run
    async def test_a_held_stream_lost_at_a_write_gives_its_place_to_the_next_get(self) -> None:
        """basic/transports: a client may reconnect with a new GET at once; the held
        stream is probed first and, lost, gives its place instead of a 409."""
        await self.start_limited()
        session = await self.session_of()
        await self.lost_at_next_write(session)
        again = await self.opened(session)
        self.assertEqual(self.limits.per_session, {self.held_binding(): 1})
        # The new stream lives: a third GET probes it and is refused.
        body = await self.refused(await self.get(session), 409)
        self.assertEqual(body["error"]["data"]["limit"], "session")
        self.assertIn(b": aigw probe\n", b"".join(again.chunks))
        again.transport.stopProducing()  # type: ignore[attr-defined]
        await self.until(lambda: self.limits.total == 0)

    @run
    async def test_concurrent_gets_after_a_lost_stream_get_one_place(self) -> None:
        await self.start_limited()
        session = await self.session_of()
        await self.lost_at_next_write(session)
        responses = await gatherResults([ensureDeferred(self.get(session)) for _ in range(3)])
        self.assertEqual(sorted(r.code for r in responses), [200, 409, 409])
        self.assertEqual(self.limits.total, 1)
        self.service.gateway.close_streams()
        await self.until(lambda: self.limits.total == 0)

    @run
    async def test_user_over_the_bound_gets_429_with_retry_after(self) -> None:
        await self.start_limited(per_user=2)
        sessions = [await self.session_of() for _ in range(3)]
        streams = [await self.opened(s) for s in sessions[:2]]
        response = await self.get(sessions[2])
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"10"])
        body = await self.refused(response, 429)
        self.assertIsNone(body["id"])
        self.assertEqual(
            body["error"]["data"], {"limit": "sessions.max_streams_per_user", "max": 2}
        )
        streams[0].transport.stopProducing()  # type: ignore[attr-defined]
        await self.until(lambda: self.limits.total == 1)
        streams.append(await self.opened(sessions[2]))
        for stream in streams[1:]:
            stream.transport.stopProducing()  # type: ignore[attr-defined]
        await self.until(lambda: self.limits.total == 0)

    @run
    async def test_another_user_still_opens_when_one_is_at_the_bound(self) -> None:
        """One user's streams do not starve another's; the process bound is 503."""
        await self.start_limited(per_user=1, total=2, auth=True)
        alice = await self.session_of("alice")
        alice_2 = await self.session_of("alice")
        bob = await self.session_of("bob")
        carol = await self.session_of("carol")
        streams = [await self.opened(alice, "alice")]
        await self.refused(await self.get(alice_2, "alice"), 429)
        streams.append(await self.opened(bob, "bob"))
        response = await self.get(carol, "carol")
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"10"])
        body = await self.refused(response, 503)
        self.assertEqual(body["error"]["data"]["limit"], "server.max_streams")
        for stream in streams:
            stream.transport.stopProducing()  # type: ignore[attr-defined]
        await self.until(lambda: self.limits.total == 0)

    @run
    async def test_shutdown_releases_every_slot(self) -> None:
        await self.start_limited()
        session = await self.session_of()
        await self.opened(session)
        await self.until(lambda: self.alpha.stream_requests)
        self.service.gateway.close_streams()
        await self.until(lambda: self.limits.total == 0 and len(self.service.gateway.feeds) == 0)
        await self.until(lambda: self.alpha.streams_closed)


class TwoProcessGetStreamTests(LimitTestCase):
    """Two processes of one deployment on one (fake) Redis for their limits and their
    sessions: the session's place is a lease, and the probe is asked of the holder's
    process on ``aigw:stream-probe`` (``shared_stream_probes.py``)."""

    @run
    async def test_a_stream_lost_on_one_process_gives_way_to_a_get_on_the_other(self) -> None:
        redis = FakeRedis(self.reactor)
        address = RedisAddress("127.0.0.1", self.network.serve(redis))
        await self.start_gateway(
            sessions=SessionsConfig(secret=SHARED_KEY, redis_url=address),
            limits=LimitsConfig(redis_url=address),
        )
        self.alpha.get_status = 200
        holder, first = self.service, self.url
        other = self.start_peer(1976)
        await self.network.settle()
        session = await self.session_of()
        await self.lost_at_next_write(session)
        self.url = "http://127.0.0.1:1976/mcp"
        again = await self.opened(session)  # the holder probed, lost, its lease given back
        self.assertEqual(
            (holder.gateway.stream_limits.total, other.gateway.stream_limits.total), (0, 1)
        )
        published = [
            c[2][:1] for c in redis.commands if c[:2] == [b"PUBLISH", b"aigw:stream-probe"]
        ]
        # Each GET stream's start told (``o``), the refused one asked (``p``), heard lost (``l``).
        self.assertEqual(published, [b"o", b"p", b"l", b"o"])
        # The holder's upstream stream, lingering for a client stream that went elsewhere,
        # ended on the word: the backend's one GET stream of the session is free.
        await self.until(lambda: len(holder.gateway.feeds) == 0)
        self.url = first
        body = await self.refused(await self.get(session), 409)  # the new one lives
        self.assertEqual(body["error"]["data"]["limit"], "session")
        self.assertIn(b": aigw probe\n", b"".join(again.chunks))
        other.gateway.close_streams()
        await self.until(lambda: redis.held() == 0)


class ListenLimitTests(LimitTestCase):
    @run
    async def test_listen_over_the_bound_is_refused_with_its_id_before_subscribing(self) -> None:
        """streamable-http: a refused request gets an error status whose body is the
        JSON-RPC error response to it; nothing is asked of the backends."""
        await self.start_limited(per_user=1)
        first = await self.listen("L1")
        self.assertEqual(first.code, 200)
        chunks: list[bytes] = []
        done = treq.collect(first, chunks.append)
        await self.until(lambda: chunks and self.alpha.stream_requests)
        response = await self.listen("L2")
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"10"])
        body = await self.refused(response, 429)
        self.assertEqual(body["id"], "L2")
        self.assertEqual(len(self.alpha.stream_requests), 1)
        self.service.gateway.close_streams()
        await done
        self.assertEqual(sse_messages(b"".join(chunks))[-1]["id"], "L1")
        await self.until(lambda: self.limits.total == 0)
        again = await self.listen("L3")
        self.assertEqual(again.code, 200)
        self.service.gateway.close_streams()
        await treq.content(again)

    @run
    async def test_listens_of_a_user_share_one_upstream_stream(self) -> None:
        """Two listens over the user's pooled upstream session: one upstream GET stream
        (SDK servers answer a second with 409), its notifications sent to both; it
        ends with the last of them."""
        await self.start_limited()
        streams = []
        for rid in ("L1", "L2"):
            response = await self.listen(rid)
            chunks: list[bytes] = []
            streams.append((chunks, treq.collect(response, chunks.append)))
            await self.until(lambda c=chunks: c and self.alpha.stream_requests)  # type: ignore[misc]
        self.assertEqual(len(self.alpha.stream_requests), 1)
        self.alpha.push({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        for chunks, _ in streams:
            await self.until(lambda c=chunks: b"list_changed" in b"".join(c))  # type: ignore[misc]
        self.service.gateway.close_streams()
        for chunks, done in streams:
            await done
            tags = [
                m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"]
                for m in sse_messages(b"".join(chunks))
                if "method" in m
            ]
            self.assertEqual(len(set(tags)), 1)
        await self.until(lambda: self.alpha.streams_closed)
        self.assertEqual(len(self.service.gateway.feeds), 0)

    @run
    async def test_server_request_on_a_shared_stream_is_refused_once(self) -> None:
        """A backend's request reaches one subscriber only ("Multiple Connections"), so
        the backend gets one answer, not one per listen."""
        await self.start_limited()
        streams = []
        for rid in ("L1", "L2"):
            response = await self.listen(rid)
            chunks: list[bytes] = []
            streams.append(treq.collect(response, chunks.append))
            await self.until(lambda c=chunks: c and self.alpha.stream_requests)  # type: ignore[misc]
        self.alpha.push({"jsonrpc": "2.0", "id": 99, "method": "roots/list"})
        await self.until(lambda: self._answers(99))
        self.alpha.push({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        self.service.gateway.close_streams()
        for done in streams:
            await done
        self.assertEqual(len(self._answers(99)), 1)

    def _answers(self, request_id: Any) -> list[Any]:
        return [
            body
            for _, body in self.alpha.received
            if isinstance(body, dict) and body.get("id") == request_id and "method" not in body
        ]

    @run
    async def test_listen_ending_while_upstream_opens_leaves_no_stream(self) -> None:
        await self.start_limited()
        self.alpha.get_hold = Deferred()
        response = await self.listen("L1")
        chunks: list[bytes] = []
        done = treq.collect(response, chunks.append)
        await self.until(lambda: chunks and self.alpha.stream_requests)
        self.service.gateway.close_streams()
        await done
        self.alpha.get_hold.callback(None)
        await self.until(lambda: self.alpha.streams_closed)
        self.assertEqual((self.limits.total, len(self.service.gateway.feeds)), (0, 0))


class FileLimitTests(SynchronousTestCase):
    def test_shortfall_counts_a_client_an_upstream_socket_per_backend_and_a_lingering_one(
        self,
    ) -> None:
        from aigw.gateway.limits import FD_RESERVE, fd_shortfall

        self.assertEqual(fd_shortfall(1024, 3, 1024), 1024 * 5 + FD_RESERVE)
        self.assertIsNone(fd_shortfall(1024, 3, 65536))
        self.assertIsNone(fd_shortfall(1024, 3, -1))  # RLIM_INFINITY


class AbandonedListenTests(LimitTestCase):
    @run
    async def test_listen_abandoned_while_sessions_open_frees_its_slot(self) -> None:
        """A client that leaves before its listen is acknowledged (upstream sessions
        still opening) leaves no stream behind: the handler is cancelled (web/app.py)
        and the slot released, no upstream stream is opened."""
        await self.start_limited(per_user=1)
        held = self.alpha.init_hold = Deferred()
        posting = self.listen("L1")
        await self.until(
            lambda: any(b.get("method") == "initialize" for _, b in self.alpha.received)
        )
        self.assertEqual(self.limits.total, 1)  # still opening
        posting.cancel()
        with self.assertRaises(Exception):  # noqa: B017 (cancelled: how, is treq's business)
            await posting
        # The hang-up frees the slot at once, without waiting for the sessions to open.
        await self.until(lambda: self.limits.total == 0)
        held.callback(None)
        await self.until(lambda: self.limits.total == 0)
        self.assertEqual((self.alpha.stream_requests, len(self.service.gateway.feeds)), ([], 0))
        again = await self.listen("L2")
        self.assertEqual(again.code, 200)
        self.service.gateway.close_streams()
        await treq.content(again)
