"""Live reload (``aigw/reload.py``): the real GatewayService in front of fake upstreams,
its config file rewritten between requests, on the memory network."""

from __future__ import annotations

import os

import treq
from twisted.internet.defer import Deferred
from twisted.logger import LogLevel, capturedLogs

from aigw.config import Config
from aigw.config.read import load_config
from aigw.gateway.streams import BACKOFF_MAX
from aigw.protocol import jsonrpc
from aigw.reload import restart_keys
from tests.fakes import MemoryStore
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import (
    PUBLIC_URL,
    Collect,
    GatewayTestCase,
    modern,
    post_listen,
    routing,
    sse_messages,
)
from tests.unit.memory import run

HEAD = f"""\
listen: ["tcp:1975:interface=127.0.0.1"]
public_url: {PUBLIC_URL}
mcp_path: /mcp
auth: none
"""


class ReloadCase(GatewayTestCase):
    """Fake upstreams ``alpha`` and ``beta``, and the config file naming them."""

    def setUp(self) -> None:
        super().setUp()
        self.path = self.mktemp()
        self.alpha = FakeUpstream(tools=["echo", "progress"])
        self.beta = FakeUpstream(tools=["t1", "t2"])
        self.urls = {
            "alpha": self.start_upstream(self.alpha),
            "beta": self.start_upstream(self.beta),
        }

    def write(
        self, *names: str, extra: str = "", head: str = HEAD, own: dict[str, str] | None = None
    ) -> None:
        """The config file: these backends (by name, in order; ``own``: a backend's own
        keys, one YAML line), then ``extra``."""
        lines = [head, "backends:"]
        for name in names:
            lines += [f"  - name: {name}", f"    url: {self.urls[name]}", "    timeout: 5s"]
            if own and name in own:
                lines.append(f"    {own[name]}")
        with open(self.path, "w") as file:
            file.write("\n".join(lines) + "\n" + extra)

    async def start(self, *names: str, extra: str = "") -> None:
        self.write(*names, extra=extra)
        self.serve(load_config(self.path))

    def reload(self) -> tuple[bool, list[str]]:
        """SIGHUP's work; whether it took, and what was logged at error."""
        failed = self.service.reloader.reloads_failed
        with capturedLogs() as events:
            self.service._reload_requested()
        errors = [
            e["log_format"].format(**e)
            for e in events
            if e["log_level"] >= LogLevel.error and "log_failure" not in e
        ]
        return self.service.reloader.reloads_failed == failed, errors


class ReloadTests(ReloadCase):
    @run
    async def test_added_backend_appears_and_open_streams_hear_list_changed(self) -> None:
        await self.start("alpha")
        session = await self.initialize()
        self.assertEqual(await self.tool_names(session), ["alpha__echo", "alpha__progress"])
        response = await self.open_stream(session)
        chunks: list[bytes] = []
        reader = Collect(chunks)
        response.deliverBody(reader)
        await self.network.settle()

        self.write("alpha", "beta")
        self.assertEqual(self.reload(), (True, []))
        await self.until(lambda: b"list_changed" in b"".join(chunks))
        self.assertIn(b'"method":"notifications/tools/list_changed"', b"".join(chunks))
        # The open session lists the new backend's tools: it joins at once.
        self.assertEqual(
            await self.tool_names(session),
            ["alpha__echo", "alpha__progress", "beta__t1", "beta__t2"],
        )
        body = await self.call(session, "tools/call", {"name": "beta__t1", "arguments": {}})
        self.assertNotIn("error", body)
        self.assertEqual(self.service.reloader.reloads_ok, 1)
        self.assertEqual(self.service.reloader.last_reload_ok_at, self.reactor.seconds())
        reader.transport.stopProducing()  # type: ignore[union-attr]

    @run
    async def test_removed_backend_calls_get_an_error_naming_it(self) -> None:
        await self.start("alpha", "beta")
        session = await self.initialize()
        self.write("alpha")
        self.assertEqual(self.reload(), (True, []))
        body = await self.call(session, "tools/call", {"name": "beta__t1", "arguments": {}})
        self.assertEqual(body["error"]["code"], jsonrpc.UPSTREAM_UNAVAILABLE)
        self.assertEqual(body["error"]["data"], {"backend": "beta", "reason": "removed"})
        self.assertIn("'beta' was removed", body["error"]["message"])
        self.assertEqual(await self.tool_names(session), ["alpha__echo", "alpha__progress"])
        # Its transport closes after the grace (its timeout); the name reaches nothing then.
        self.assertIn("beta", self.service.gateway.transports)
        self.reactor.advance(5.0)
        await self.until(lambda: "beta" not in self.service.gateway.transports)

    @run
    async def test_2026_07_28_listens_hear_it_and_pooled_sessions_of_a_removed_backend_end(
        self,
    ) -> None:
        await self.start("alpha", "beta")
        method = "tools/list"
        _, body = await self.post(modern(method), headers=routing(method))
        self.assertEqual(len(body["result"]["tools"]), 4)
        self.assertEqual(len(self.service.gateway.sessions.pool), 2)
        listen = await post_listen(self.http, self.url, {"toolsListChanged": True}, "L1")
        chunks: list[bytes] = []
        done = treq.collect(listen, chunks.append)
        await self.until(lambda: chunks)

        self.write("alpha")
        self.assertEqual(self.reload(), (True, []))
        await self.until(lambda: b"list_changed" in b"".join(chunks))
        self.assertEqual(len(self.service.gateway.sessions.pool), 1)
        await self.until(lambda: self.beta.deleted)
        _, body = await self.post(modern(method), headers=routing(method))
        self.assertEqual(
            [t["name"] for t in body["result"]["tools"]], ["alpha__echo", "alpha__progress"]
        )
        self.service.gateway.close_streams()
        await done
        change = sse_messages(b"".join(chunks))[1]
        self.assertEqual(change["method"], "notifications/tools/list_changed")
        self.assertEqual(change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "L1")

    @run
    async def test_a_removed_backends_stream_ends_with_its_grace(self) -> None:
        await self.start("alpha", "beta")
        self.beta.get_status = 200
        session = await self.initialize()
        response = await self.open_stream(session)
        reader = Collect([])
        response.deliverBody(reader)
        await self.until(lambda: self.beta.stream_requests)
        gateway = self.service.gateway
        self.assertEqual(len(gateway.feeds), 1)
        self.write("alpha")
        with capturedLogs() as events:
            self.assertTrue(self.service.reloader.reload())
            self.reactor.advance(5.0)  # the grace: the old connections close
            await self.until(lambda: self.beta.streams_closed)
            self.reactor.advance(BACKOFF_MAX)  # the feed looks again and finds no backend
            await self.until(lambda: len(gateway.feeds) == 0)
        self.assertNotIn("beta", gateway.transports)
        self.assertEqual([e for e in events if "log_failure" in e], [])
        reader.transport.stopProducing()  # type: ignore[attr-defined]

    @run
    async def test_invalid_file_changes_nothing_and_logs_each_problem_with_its_line(self) -> None:
        await self.start("alpha")
        session = await self.initialize()
        self.write("alpha", "beta", extra="access:\n  default: maybe\nbogus: 1\n")
        ok, errors = self.reload()
        self.assertFalse(ok)
        self.assertEqual(self.service.reloader.reloads_failed, 1)
        self.assertTrue(any("line 14: access.default:" in e for e in errors), errors)
        self.assertTrue(any("line 15: bogus:" in e for e in errors), errors)
        self.assertEqual(await self.tool_names(session), ["alpha__echo", "alpha__progress"])
        self.assertEqual(sorted(self.service.gateway.transports), ["alpha"])

    @run
    async def test_a_restart_only_change_is_refused_whole(self) -> None:
        await self.start("alpha")
        session = await self.initialize()
        self.write("alpha", "beta", head=HEAD + "server:\n  idle_timeout: 5s\n")
        ok, errors = self.reload()
        self.assertFalse(ok)
        self.assertTrue(any("server.idle_timeout change only with a restart" in e for e in errors))
        # Nothing of it applied: not even the backend it adds.
        self.assertEqual(await self.tool_names(session), ["alpha__echo", "alpha__progress"])
        self.assertEqual(sorted(self.service.gateway.transports), ["alpha"])

    @run
    async def test_stream_and_session_bounds_follow_a_reload(self) -> None:
        await self.start("alpha")
        self.write(
            "alpha",
            extra="sessions:\n  ttl: 1h\n  pool_size: 5\n  max_streams_per_user: 1\n"
            "server:\n  max_streams: 2\n",
        )
        self.assertEqual(self.reload(), (True, []))
        gateway = self.service.gateway
        self.assertEqual(
            (gateway.stream_limits.max_streams, gateway.stream_limits.max_per_user), (2, 1)
        )
        self.assertEqual((gateway.sessions.codec.ttl, gateway.sessions.pool.max_entries), (3600, 5))
        session = await self.initialize()
        first = await self.open_stream(session)
        reader = Collect([])
        first.deliverBody(reader)
        other = await self.initialize()
        refused = await self.open_stream(other)
        self.assertEqual(refused.code, 429)
        reader.transport.stopProducing()  # type: ignore[attr-defined]

    @run
    async def test_access_rules_take_effect_for_the_next_request(self) -> None:
        await self.start("alpha", "beta")
        session = await self.initialize()
        self.write(
            "alpha", "beta", extra="access:\n  rules:\n    - {effect: deny, backends: [beta]}\n"
        )
        self.assertEqual(self.reload(), (True, []))
        self.assertEqual(await self.tool_names(session), ["alpha__echo", "alpha__progress"])
        body = await self.call(session, "tools/call", {"name": "beta__t1", "arguments": {}})
        self.assertEqual(body["error"]["code"], -32602)

    @run
    async def test_a_request_in_flight_finishes_with_the_config_it_began_with(self) -> None:
        await self.start("alpha")
        session = await self.initialize()
        self.alpha.hold = Deferred()
        response = await self.stream_call(session, 5, {"name": "alpha__progress"})
        chunks: list[bytes] = []
        finished = treq.collect(response, chunks.append)
        await self.until(lambda: b"notifications/progress" in b"".join(chunks))
        # alpha removed: the request already routed to it still gets its answer.
        self.write("beta")
        self.assertEqual(self.reload(), (True, []))
        self.alpha.hold.callback(None)
        await finished
        self.assertIn(b"finished", b"".join(chunks))
        body = await self.call(session, "tools/call", {"name": "alpha__echo"}, rid=6)
        self.assertEqual(body["error"]["data"]["reason"], "removed")

    @run
    async def test_a_changed_backend_gets_a_new_transport_and_sessions_follow(self) -> None:
        await self.start("alpha", "beta")
        session = await self.initialize()
        old = self.service.gateway.transports["beta"]
        gamma = FakeUpstream(tools=["g"])
        self.urls["beta"] = self.start_upstream(gamma)
        self.write("alpha", "beta")
        self.assertEqual(self.reload(), (True, []))
        self.assertIsNot(self.service.gateway.transports["beta"], old)
        # The old upstream session is unknown there: re-opened transparently.
        self.assertIn("beta__g", await self.tool_names(session))


class UserOAuthReloadTests(ReloadCase):
    """A gateway with a store serves the pages of users' authorizations whatever its
    backends; a reload adds, changes and removes the ``user_oauth`` backends they serve
    (each with the authorization its transport uses), and a refused one changes none."""

    def setUp(self) -> None:
        super().setUp()
        self.store = MemoryStore()
        state = os.path.abspath(self.mktemp())
        os.mkdir(state)
        key = os.path.join(state, "session.key")
        with open(key, "wb") as handle:
            handle.write(b"k" * 32)
        os.chmod(key, 0o600)
        self.head = (
            f'listen: ["tcp:1975:interface=127.0.0.1"]\npublic_url: {PUBLIC_URL}\n'
            "mcp_path: /mcp\n"
            f"auth: {{issuer: http://127.0.0.1:9, jwks_uri: http://127.0.0.1:9/jwks,"
            f" audiences: [{PUBLIC_URL}/mcp]}}\n"
            f"state_dir: {state}\nsessions: {{secret_file: {key}}}\n"
        )

    def served(self) -> dict[str, object]:
        return dict(self.service.user_authorizations)

    @run
    async def test_added_changed_and_removed_user_oauth_backends_are_served_as_in_force(
        self,
    ) -> None:
        user_oauth = {"beta": "auth: {user_oauth: {}}"}
        self.write("alpha", head=self.head)
        self.serve(load_config(self.path))
        self.assertEqual(self.served(), {})
        self.write("alpha", "beta", head=self.head, own=user_oauth)
        self.assertEqual(self.reload(), (True, []))
        added = self.served()
        self.assertEqual(list(added), ["beta"])
        # A refused reload (a restart-only key) that would also change it: nothing.
        self.write("alpha", "beta", head=self.head + "mcp_path: /other\n", own=user_oauth)
        self.assertFalse(self.reload()[0])
        self.assertEqual(self.served(), added)
        self.urls["beta"] += "/v2"
        self.write("alpha", "beta", head=self.head, own=user_oauth)
        self.assertEqual(self.reload(), (True, []))
        self.assertIsNot(self.served()["beta"], added["beta"])
        self.write("alpha", "beta", head=self.head)  # no longer user_oauth
        self.assertEqual(self.reload(), (True, []))
        self.assertEqual(self.served(), {})


class RestartKeysTests(GatewayTestCase):
    def test_names_the_fields_that_changed_never_their_values(self) -> None:
        path = self.mktemp()
        with open(path, "w") as file:
            file.write(HEAD + "backends:\n  - {name: a, url: 'http://127.0.0.1:1/mcp'}\n")
        old = load_config(path)
        with open(path, "w") as file:
            file.write(HEAD.replace("/mcp", "/other"))
            file.write("backends:\n  - {name: a, url: 'http://127.0.0.1:1/mcp'}\n")
            file.write("sessions:\n  max_streams_per_user: 3\n")
        # The stream bound is live (``Reconfigure.follow_limits``), the path is not.
        self.assertEqual(restart_keys(old, load_config(path)), ["mcp_path"])
        with open(path, "a") as file:  # its subscription is opened at start
            file.write("  redis_url: redis://127.0.0.1:6379/0\n")
        self.assertEqual(restart_keys(old, load_config(path)), ["mcp_path", "sessions.redis_url"])
        with open(path, "a") as file:  # its connections' bound, set at start with them
            file.write("  redis_timeout: 2s\n")
        self.assertEqual(
            restart_keys(old, load_config(path)),
            ["mcp_path", "sessions.redis_url", "sessions.redis_timeout"],
        )

    def test_the_metrics_listener_and_the_audit_file_need_a_restart(self) -> None:
        """Both are opened at start: a reload that moves them is refused whole."""
        path = self.mktemp()
        backends = "backends:\n  - {name: a, url: 'http://127.0.0.1:1/mcp'}\n"
        with open(path, "w") as file:
            file.write(HEAD + backends + "metrics: off\n")
        old = load_config(path)
        with open(path, "w") as file:
            file.write(HEAD + backends + "metrics: {listen: 'tcp:9999:interface=127.0.0.1'}\n")
            file.write("audit: {include_arguments: true}\n")
        self.assertEqual(
            restart_keys(old, load_config(path)),
            ["metrics.enabled", "metrics.listen", "audit.include_arguments"],
        )

    def test_auth_settings_over_the_same_keys_are_live_the_issuer_is_not(self) -> None:
        auth = "auth:\n  issuer: https://as.example\n  leeway: 5s\n"
        base = HEAD.replace("auth: none\n", "") + "backends:\n  - {name: a, url: 'http://h/mcp'}\n"
        path = self.mktemp()

        def load(text: str) -> Config:
            with open(path, "w") as file:
                file.write(base + text)
            return load_config(path)

        old = load(auth)
        live = load(auth + "  required_scopes: [x]\n  audiences: [https://other]\n")
        self.assertEqual(restart_keys(old, live), [])
        moved = load(auth.replace("as.example", "as2.example").replace("5s", "9s"))
        self.assertEqual(restart_keys(old, moved), ["auth.issuer"])
        self.assertEqual(restart_keys(old, load("auth: none\n")), ["auth"])
