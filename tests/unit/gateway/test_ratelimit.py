"""Rate and in-flight limits (``limits``): buckets on a fake clock, each ``per``, globs,
in-flight release, and the 429 through the real gateway (RFC 6585 §4, RFC 9110 §10.2.3)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import load_config
from aigw.config.limits import LimitRule, LimitsConfig, Rate
from aigw.events import RequestFinished
from aigw.gateway.ratelimit import Bucket, Limiter, LocalBuckets, Permit, RateLimited
from aigw.gateway.redis_buckets import RedisBuckets
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import PUBLIC_URL, GatewayTestCase, HangUp, modern, routing
from tests.unit.memory import run

ALICE = Principal("https://as", "alice", "app-1", frozenset(), {}, None, None)
BOB = Principal("https://as", "bob", "app-2", frozenset(), {}, None, None)


def limiter(*rules: LimitRule, clock: Clock | None = None) -> Limiter:
    return Limiter(LimitsConfig(rules=rules), clock or Clock())


def outcome(work: Any) -> Any:
    """The result of a coroutine that needs no reactor turn (local buckets), or its error."""
    done: list[Any] = []
    Deferred.fromCoroutine(work).addBoth(done.append)
    assert done, "the limiter waited on something"
    return done[0]


class LocalBucketTests(SynchronousTestCase):
    def test_burst_then_refill_at_the_rate_with_retry_after(self) -> None:
        clock = Clock()
        buckets = LocalBuckets(clock)
        bucket = Bucket("k", rate=2.0, capacity=3)
        self.assertEqual([buckets.take_now([bucket]).refused for _ in range(3)], [None] * 3)
        refused = buckets.take_now([bucket])
        self.assertEqual((refused.refused, refused.wait), (0, 0.5))
        clock.advance(0.5)
        self.assertIsNone(buckets.take_now([bucket]).refused)
        clock.advance(10)  # refills to the burst, not beyond
        self.assertEqual([buckets.take_now([bucket]).refused for _ in range(4)], [None] * 3 + [0])

    def test_all_or_nothing_across_buckets(self) -> None:
        buckets = LocalBuckets(Clock())
        roomy, tight = Bucket("a", 1.0, 5), Bucket("b", 1.0, 1)
        self.assertIsNone(buckets.take_now([roomy, tight]).refused)
        self.assertEqual(buckets.take_now([roomy, tight]).refused, 1)
        # The refused request took nothing from the roomy bucket: 4 tokens are left.
        self.assertEqual([buckets.take_now([roomy]).refused for _ in range(5)], [None] * 4 + [0])


class LimiterTests(SynchronousTestCase):
    def test_per_sub_counts_each_user_apart_and_names_the_rule(self) -> None:
        clock = Clock()
        limits = limiter(LimitRule(per="sub", rate=Rate(1, 60.0)), clock=clock)
        outcome(limits.enter(ALICE))
        outcome(limits.enter(BOB))
        refused = outcome(limits.enter(ALICE))
        self.assertIsInstance(refused.value, RateLimited)
        error = refused.value
        self.assertEqual((error.status, error.limit, error.retry_after), (429, "sub:0", 60))
        self.assertIn("limits.rules[0]", error.message)
        clock.advance(59)
        self.assertEqual(outcome(limits.enter(ALICE)).value.retry_after, 1)
        clock.advance(1)
        self.assertIsInstance(outcome(limits.enter(ALICE)), Permit)

    def test_per_client(self) -> None:
        limits = limiter(LimitRule(per="client", rate=Rate(1, 1.0)))
        twin = Principal("https://as", "carol", "app-1", frozenset(), {}, None, None)
        outcome(limits.enter(ALICE))
        self.assertIsInstance(outcome(limits.enter(twin)).value, RateLimited)  # same client
        self.assertIsInstance(outcome(limits.enter(BOB)), Permit)

    def test_per_backend_and_per_tool_apply_when_routed_and_matched(self) -> None:
        limits = limiter(
            LimitRule(per="backend", match="kiwi", rate=Rate(1, 1.0)),
            LimitRule(per="tool", match="alpha__*", rate=Rate(1, 1.0)),
        )
        outcome(limits.enter(ALICE))
        outcome(limits.enter(ALICE))  # arrival counts neither rule
        outcome(limits.route(ALICE, "kiwi", "kiwi__search"))
        refused = outcome(limits.route(BOB, "kiwi", "kiwi__book")).value  # the backend's bucket
        self.assertEqual(refused.limit, "backend:0")
        outcome(limits.route(ALICE, "alpha", "alpha__echo"))
        self.assertEqual(outcome(limits.route(BOB, "alpha", "alpha__echo")).value.limit, "tool:1")
        outcome(limits.route(BOB, "alpha", "alpha__other"))  # each tool its own bucket
        outcome(limits.route(BOB, "beta", "beta__echo"))  # matched by no glob
        outcome(limits.route(BOB, "alpha", None))  # not a tool: no tool rule

    def test_keys_hold_no_identity_in_clear(self) -> None:
        limits = limiter(LimitRule(per="sub", rate=Rate(5, 1.0)))
        outcome(limits.enter(ALICE))
        (key,) = limits.local._buckets.keys()
        self.assertRegex(key, r"^aigw:rl:0:sub:[0-9a-f]{32}$")
        self.assertNotIn("alice", key)

    def test_in_flight_bound_and_release(self) -> None:
        limits = limiter(LimitRule(per="sub", in_flight=2))
        first, second = outcome(limits.enter(ALICE)), outcome(limits.enter(ALICE))
        refused = outcome(limits.enter(ALICE)).value
        self.assertEqual((refused.limit, refused.retry_after), ("sub:0", 1))
        self.assertIsInstance(outcome(limits.enter(BOB)), Permit)
        first.release()
        first.release()  # idempotent
        third = outcome(limits.enter(ALICE))
        second.release()
        third.release()
        counts = limits.local.in_flight
        self.assertEqual(sum(v for k, v in counts.items() if "sub" in k), 1)  # bob's

    def test_a_reload_keeps_unchanged_buckets_and_starts_changed_ones_afresh(self) -> None:
        rule = LimitRule(per="sub", rate=Rate(1, 60.0))
        limits = limiter(rule)
        outcome(limits.enter(ALICE))
        limits.follow(LimitsConfig(rules=(rule,)))
        self.assertIsInstance(outcome(limits.enter(ALICE)).value, RateLimited)
        limits.follow(LimitsConfig(rules=(LimitRule(per="sub", rate=Rate(2, 60.0)),)))
        self.assertIsInstance(outcome(limits.enter(ALICE)), Permit)

    def test_no_rules_cost_nothing(self) -> None:
        limits = limiter()
        self.assertIsInstance(outcome(limits.enter(ALICE)), Permit)
        self.assertEqual(len(limits.local._buckets), 0)


class Finished:
    """An observer keeping the ``RequestFinished`` events."""

    def __init__(self, events: list[RequestFinished]) -> None:
        self.events = events

    def request_finished(self, event: RequestFinished) -> None:
        self.events.append(event)

    def access_decided(self, event: object) -> None:
        pass

    def authentication_refused(self, event: object) -> None:
        pass

    def upstream_connection(self, event: object) -> None:
        pass

    def auth_server_fetched(self, event: object) -> None:
        pass


def call(rid: int, name: str = "alpha__echo") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name}}


class GatewayLimitTests(GatewayTestCase):
    async def start_limited(self, *rules: LimitRule) -> str:
        await self.start_gateway(limits=LimitsConfig(rules=rules))
        self.events: list[RequestFinished] = []
        self.service.observers.add(Finished(self.events))
        return await self.initialize()

    @run
    async def test_over_the_rate_is_429_with_retry_after_and_a_json_rpc_error(self) -> None:
        session = await self.start_limited(LimitRule(per="sub", rate=Rate(2, 1.0)))
        for rid in (1, 2):
            response, body = await self.post(call(rid), session)
            self.assertEqual(response.code, 200, body)
        response, body = await self.post(call(3), session)
        self.assertEqual(response.code, 429)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"1"])
        self.assertEqual(body["id"], 3)
        self.assertEqual(body["error"]["code"], jsonrpc.RATE_LIMITED)
        self.assertEqual(body["error"]["data"], {"limit": "sub:0", "retry_after": 1})
        limited = [e for e in self.events if e.outcome == "limited"]
        self.assertEqual([e.error_code for e in limited], [jsonrpc.RATE_LIMITED])
        await self.network.sleep(1.0)
        response, body = await self.post(call(4), session)
        self.assertEqual(response.code, 200, body)

    @run
    async def test_lists_count_per_sub_too(self) -> None:
        session = await self.start_limited(LimitRule(per="sub", rate=Rate(1, 60.0)))
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        self.assertEqual((await self.post(listing, session))[0].code, 200)
        response, body = await self.post(listing, session)
        self.assertEqual((response.code, body["error"]["data"]["limit"]), (429, "sub:0"))
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"60"])

    @run
    async def test_a_tool_glob_limits_its_tools_only(self) -> None:
        session = await self.start_limited(
            LimitRule(per="tool", match="alpha__*", rate=Rate(1, 60.0))
        )
        self.assertEqual((await self.post(call(1), session))[0].code, 200)
        response, body = await self.post(call(2), session)
        self.assertEqual((response.code, body["error"]["data"]["limit"]), (429, "tool:0"))
        response, body = await self.post(call(3, "beta__t1"), session)
        self.assertEqual(response.code, 200, body)

    @run
    async def test_the_2026_era_answers_429_with_the_clients_id(self) -> None:
        await self.start_limited(LimitRule(per="sub", rate=Rate(1, 60.0)))
        message = modern("tools/call", {"name": "alpha__echo", "arguments": {}}, "m-2")
        headers = routing("tools/call", "alpha__echo")
        await self.post(modern("tools/list", rid="m-1"), headers=routing("tools/list"))
        response, body = await self.post(message, headers=headers)
        self.assertEqual(response.code, 429, body)
        self.assertEqual(body["id"], "m-2")

    @run
    async def test_in_flight_is_released_on_success_error_and_hang_up(self) -> None:
        session = await self.start_limited(LimitRule(per="sub", in_flight=1))
        counts = self.service.gateway.limiter.local.in_flight
        self.alpha.hold = Deferred()
        held = await self.stream_call(session, 1, {"name": "alpha__progress"})
        response, body = await self.post(call(2), session)
        self.assertEqual((response.code, body["error"]["data"]["limit"]), (429, "sub:0"))
        self.alpha.hold.callback(None)
        await self.until(lambda: not counts)
        del held
        # An error answer releases it too.
        response, body = await self.post(call(3, "alpha__nope"), session)
        self.assertIn("error", body)
        self.assertEqual(dict(counts), {})
        # A client that hangs up mid-request releases it.
        self.alpha.hold = Deferred()
        response = await self.stream_call(session, 4, {"name": "alpha__progress"})
        self.assertEqual(sum(counts.values()), 1)
        reader = HangUp()
        response.deliverBody(reader)
        await reader.got
        await self.until(lambda: not counts)
        self.alpha.hold.callback(None)


class LimitReloadTests(GatewayTestCase):
    """``limits`` follow a reload (SIGHUP), like the other bounds."""

    def write(self, limits: str) -> None:
        head = (
            f'listen: ["tcp:1975:interface=127.0.0.1"]\npublic_url: {PUBLIC_URL}\n'
            f"mcp_path: /mcp\nauth: none\nbackends:\n  - {{name: alpha, url: {self.upstream}}}\n"
        )
        with open(self.path, "w") as file:
            file.write(head + limits)

    def reload(self) -> None:
        self.service._reload_requested()
        self.assertEqual(self.service.reloader.reloads_failed, 0)

    @run
    async def test_rules_and_the_store_follow_a_reload(self) -> None:
        self.path = self.mktemp()
        self.upstream = self.start_upstream(FakeUpstream(tools=["echo"]))
        rule = "  rules:\n    - {per: sub, rate: 1/m}\n"
        self.write("limits:\n" + rule)
        self.serve(load_config(self.path))
        session = await self.initialize()
        codes = [(await self.post(call(rid), session))[0].code for rid in range(2)]
        self.assertEqual(codes, [200, 429])
        # To Redis (nothing listens on port 1, failing open): a new store, the rule kept.
        self.write("limits:\n  redis_url: redis://127.0.0.1:1\n" + rule)
        self.reload()
        limiter = self.service.gateway.limiter
        self.assertIsInstance(limiter.store, RedisBuckets)
        self.assertIs(self.service.gateway.calls.limiter, limiter)
        self.assertEqual((await self.post(call(3), session))[0].code, 200)
        self.assertEqual(limiter.store_failures.count, 1)
        # The same Redis, other settings: the store (and the leases it holds) is kept.
        self.write(
            "limits:\n  redis_url: redis://127.0.0.1:1\n  redis_timeout: 1s\n"
            "  lease_ttl: 5s\n" + rule
        )
        self.reload()
        self.assertIs(self.service.gateway.limiter, limiter)
        store = limiter.store
        assert isinstance(store, RedisBuckets)
        self.assertEqual((store.timeout, store.lease_ttl), (1.0, 5.0))
        # No limits at all.
        self.write("")
        self.reload()
        self.assertEqual(
            self.service.gateway.limiter.store_failures.count, 1
        )  # counted since start
        codes = [(await self.post(call(rid), session))[0].code for rid in range(3)]
        self.assertEqual(codes, [200] * 3)
