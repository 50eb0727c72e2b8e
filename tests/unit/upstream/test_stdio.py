"""``StdioUpstream``: a backend run as a child process, on a memory reactor with fake children."""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig, StdioConfig
from aigw.events import UpstreamConnection
from aigw.principal import ANONYMOUS
from aigw.upstream.api import BodyReader, Reply, UpstreamError, UpstreamSessionGone
from aigw.upstream.client import Upstream
from aigw.upstream.factory import build_transport
from aigw.upstream.stdio import StdioUpstream
from aigw.upstream.stdio_process import MAX_LINE_BYTES, STOP_GRACE_SECONDS, Lines, LineTooLong
from aigw.upstream.stdio_session import BACKOFF_FIRST, STABLE_SECONDS
from tests.fakes import RecordingObserver
from tests.unit.upstream.processes import FakeProcess, ProcessReactor

CONFIG = BackendConfig(
    name="local",
    command="mcp-server",
    args=("--stdio",),
    env={"API_KEY": "k"},
    cwd="/srv",
    timeout=30.0,
)
ALICE = attrs.evolve(ANONYMOUS, issuer="https://as", subject="alice")
BOB = attrs.evolve(ANONYMOUS, issuer="https://as", subject="bob")


def request(request_id: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
    ).encode()


def notification(method: str, params: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params or {}}).encode()


class StdioTestCase(SynchronousTestCase):
    config = CONFIG

    def setUp(self) -> None:
        self.reactor = ProcessReactor()
        self.observer = RecordingObserver()
        self.upstream = StdioUpstream(
            self.config,
            self.reactor,
            self.observer,
            environ={"PATH": "/bin", "AIGW_SECRET": "s", "HOME": "/h"},
        )
        self.ids = iter(range(1, 1000))

    def post(
        self, body: bytes, sink: Any = None, session_id: str | None = None, **kw: Any
    ) -> Deferred[Reply]:
        return ensureDeferred(self.upstream.post(body, sink or (lambda m: None), session_id, **kw))

    def open(self, principal: Any = None) -> tuple[FakeProcess, str]:
        """initialize and notifications/initialized: the child and the session id."""
        got: list[Any] = []
        reply = self.post(
            request(next(self.ids), "initialize", {"protocolVersion": "2025-06-18"}),
            got.append,
            principal=principal,
        )
        child = self.reactor.spawned[-1]
        if not reply.called:
            child.answer({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}})
        session_id = self.successResultOf(reply).session_id
        assert session_id is not None
        self.successResultOf(
            self.post(
                notification("notifications/initialized"),
                session_id=session_id,
                principal=principal,
            )
        )
        return child, session_id


class StartTests(StdioTestCase):
    def test_started_on_first_use_with_a_minimal_environment(self) -> None:
        self.assertEqual(self.reactor.spawned, [])
        child, session_id = self.open()
        self.assertEqual(
            (child.executable, child.args, child.path),
            ("mcp-server", ["mcp-server", "--stdio"], "/srv"),
        )
        self.assertEqual(child.env, {"PATH": "/bin", "HOME": "/h", "API_KEY": "k"})
        self.assertTrue(session_id.startswith("stdio-"))
        self.assertEqual(
            [m["method"] for m in child.received()], ["initialize", "notifications/initialized"]
        )

    def test_one_initialize_per_process(self) -> None:
        """A later session on the same process gets the first one's result, the child nothing."""
        child, first = self.open()
        got: list[Any] = []
        reply = self.successResultOf(self.post(request(77, "initialize"), got.append))
        self.successResultOf(self.post(notification("notifications/initialized"), session_id=first))
        self.assertEqual(reply.session_id, first)
        self.assertEqual(
            got,
            [
                {
                    "jsonrpc": "2.0",
                    "id": 77,
                    "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}},
                }
            ],
        )
        self.assertEqual(len(self.reactor.spawned), 1)
        self.assertEqual(len(child.received()), 2)

    def test_the_prober_is_told_to_use_sessions(self) -> None:
        error = self.failureResultOf(self.post(request(1, "server/discover")), UpstreamError).value
        self.assertEqual(error.kind, "http_error")
        self.assertEqual(self.reactor.spawned, [])

    def test_listen_is_no_stream_and_delete_does_nothing(self) -> None:
        reply = self.successResultOf(
            ensureDeferred(
                self.upstream.listen(b"{}", lambda m: None, "2026-07-28", {}, lambda r: None)
            )
        )
        self.assertEqual(reply.status, 405)
        self.assertEqual(
            self.successResultOf(ensureDeferred(self.upstream.delete("stdio-x-1", None))), 200
        )

    def test_no_session_no_request(self) -> None:
        error = self.failureResultOf(self.post(request(1, "tools/list")), UpstreamError).value
        self.assertEqual(error.kind, "refused")

    def test_factory_picks_the_transport(self) -> None:
        self.assertIsInstance(build_transport(CONFIG, self.reactor), StdioUpstream)
        http = BackendConfig(name="web", url="http://127.0.0.1:9/mcp")
        self.assertIsInstance(build_transport(http, self.reactor), Upstream)


class RoutingTests(StdioTestCase):
    def test_answers_go_to_their_call_by_id(self) -> None:
        child, session_id = self.open()
        first: list[Any] = []
        second: list[Any] = []
        one = self.post(request(10, "tools/list"), first.append, session_id)
        two = self.post(request(11, "tools/call"), second.append, session_id)
        child.say({"jsonrpc": "2.0", "id": 11, "result": {"content": []}})
        self.assertFalse(one.called)
        self.assertEqual(self.successResultOf(two).status, 200)
        child.say({"jsonrpc": "2.0", "id": 10, "result": {"tools": []}})
        self.successResultOf(one)
        self.assertEqual([m["id"] for m in first], [10])
        self.assertEqual([m["id"] for m in second], [11])

    def test_progress_goes_to_the_call_with_its_token(self) -> None:
        child, session_id = self.open()
        first: list[Any] = []
        second: list[Any] = []
        self.post(
            request(10, "tools/call", {"_meta": {"progressToken": "a"}}), first.append, session_id
        )
        self.post(
            request(11, "tools/call", {"_meta": {"progressToken": "b"}}), second.append, session_id
        )
        child.say(
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": "b", "progress": 1},
            }
        )
        self.assertEqual(first, [])
        self.assertEqual(second[0]["params"]["progressToken"], "b")

    def test_a_server_request_during_the_only_call_goes_to_it(self) -> None:
        child, session_id = self.open()
        got: list[Any] = []
        self.post(request(10, "tools/call"), got.append, session_id)
        child.say({"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage", "params": {}})
        self.assertEqual(got[0]["method"], "sampling/createMessage")
        self.successResultOf(
            self.post(
                json.dumps({"jsonrpc": "2.0", "id": 0, "result": {}}).encode(),
                session_id=session_id,
            )
        )
        self.assertEqual(child.received()[-1], {"jsonrpc": "2.0", "id": 0, "result": {}})

    def test_other_messages_go_to_the_streams(self) -> None:
        child, session_id = self.open()
        heard: list[Any] = []
        also: list[Any] = []
        readers: list[BodyReader] = []
        streams = [
            ensureDeferred(self.upstream.get_stream(sink, session_id, None, None, readers.append))
            for sink in (heard.append, also.append)
        ]
        changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
        child.say(changed)
        self.assertEqual((heard, also), ([changed], [changed]))
        for reader in readers:
            reader.stop()
        self.assertEqual([self.successResultOf(s).status for s in streams], [200, 200])

    def test_a_shared_process_refuses_a_request_that_belongs_to_no_call(self) -> None:
        """Any open stream of a shared process may be another user's: a server request
        with no single call in flight is refused to the child (-32601, data.reason
        ``no_single_call``, as aigw refuses every request no client can take), never
        guessed."""
        child, session_id = self.open()
        heard: list[Any] = []
        ensureDeferred(
            self.upstream.get_stream(heard.append, session_id, None, None, lambda r: None)
        )
        child.say({"jsonrpc": "2.0", "id": 5, "method": "roots/list"})
        self.assertEqual(heard, [])
        [refusal] = [m for m in child.received() if m.get("id") == 5]
        self.assertEqual(refusal["error"]["code"], -32601)
        self.assertEqual(refusal["error"]["data"], {"reason": "no_single_call"})
        self.assertTrue(refusal["error"]["message"].startswith("roots/list: "))

    def test_a_shared_process_refuses_a_request_while_two_calls_are_in_flight(self) -> None:
        """Two calls in flight, maybe two users': the request is neither's to take."""
        child, session_id = self.open()
        got: list[list[Any]] = [[], []]
        for index, rid in enumerate((20, 21)):
            self.post(request(rid, "tools/call"), got[index].append, session_id=session_id)
        child.say({"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage", "params": {}})
        self.assertEqual(got, [[], []])
        [refusal] = [m for m in child.received() if m.get("id") == 7]
        error = refusal["error"]
        self.assertEqual((error["code"], error["data"]), (-32601, {"reason": "no_single_call"}))

    def test_a_shared_processs_ping_outside_a_call_is_answered_not_refused(self) -> None:
        """basic/utilities/ping: the receiver MUST answer promptly with an empty result;
        the child's peer is aigw, which answers on its stdin (``protocol/ping.py``)."""
        child, session_id = self.open()
        heard: list[Any] = []
        ensureDeferred(
            self.upstream.get_stream(heard.append, session_id, None, None, lambda r: None)
        )
        child.say({"jsonrpc": "2.0", "id": "p1", "method": "ping"})
        self.assertEqual(heard, [])
        self.assertEqual(child.received()[-1], {"jsonrpc": "2.0", "id": "p1", "result": {}})

    def test_a_ping_during_a_call_is_answered_here_not_relayed(self) -> None:
        child, session_id = self.open()
        got: list[Any] = []
        self.post(request(30, "tools/call"), got.append, session_id)
        child.say({"jsonrpc": "2.0", "id": 9, "method": "ping"})
        self.assertEqual(got, [])
        self.assertEqual(child.received()[-1], {"jsonrpc": "2.0", "id": 9, "result": {}})

    def test_two_calls_with_one_progress_token_get_none_of_its_progress(self) -> None:
        """Clients choose their tokens: a token two calls share names neither of them."""
        child, session_id = self.open()
        got: list[list[Any]] = [[], []]
        for index, rid in enumerate((20, 21)):
            params = {"name": "t", "_meta": {"progressToken": "p"}}
            self.post(request(rid, "tools/call", params), got[index].append, session_id=session_id)
        child.say(
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": "p", "progress": 1},
            }
        )
        self.assertEqual(got, [[], []])

    def test_a_late_answer_is_dropped(self) -> None:
        child, session_id = self.open()
        heard: list[Any] = []
        ensureDeferred(
            self.upstream.get_stream(heard.append, session_id, None, None, lambda r: None)
        )
        child.say({"jsonrpc": "2.0", "id": 999, "result": {}})
        self.assertEqual(heard, [])

    def test_notifications_and_answers_are_written_and_done(self) -> None:
        child, session_id = self.open()
        reply = self.successResultOf(
            self.post(
                notification("notifications/cancelled", {"requestId": 3}), session_id=session_id
            )
        )
        self.assertEqual(reply.status, 202)
        self.assertEqual(child.received()[-1]["method"], "notifications/cancelled")

    def test_a_stopped_call_fails_and_its_answer_is_dropped(self) -> None:
        child, session_id = self.open()
        readers: list[BodyReader] = []
        got: list[Any] = []
        posting = self.post(
            request(10, "tools/call"), got.append, session_id, on_reader=readers.append
        )
        readers[0].stop()
        self.assertEqual(self.failureResultOf(posting, UpstreamError).value.kind, "unavailable")
        child.say({"jsonrpc": "2.0", "id": 10, "result": {}})
        self.assertEqual(got, [])

    def test_a_cancelled_call_is_forgotten(self) -> None:
        child, session_id = self.open()
        got: list[Any] = []
        posting = self.post(request(10, "tools/call"), got.append, session_id)
        posting.cancel()
        self.failureResultOf(posting, CancelledError)
        child.say({"jsonrpc": "2.0", "id": 10, "result": {}})
        self.assertEqual(got, [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])  # its timer too

    def test_a_call_or_stream_closed_while_waiting_fires_nothing(self) -> None:
        """The collector closes a coroutine abandoned mid-wait (its session dropped):
        it is forgotten without firing the Deferred it awaits, which would resume it
        while it runs ("coroutine already executing", an unhandled error in Deferred)."""
        child, session_id = self.open()
        got: list[Any] = []
        calling = self.upstream.post(request(10, "tools/call"), got.append, session_id)
        streaming = self.upstream.get_stream(got.append, session_id, None, None, lambda r: None)
        waiting = [ensureDeferred(calling), ensureDeferred(streaming)]
        calling.close()
        streaming.close()
        self.assertEqual([w.called for w in waiting], [False, False])
        child.say({"jsonrpc": "2.0", "id": 10, "result": {}})
        child.say({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        self.assertEqual(got, [])  # neither the call nor the stream is there any more
        self.assertEqual(self.reactor.getDelayedCalls(), [])  # the call's timer too

    def test_a_body_on_several_lines_is_sent_on_one(self) -> None:
        child, session_id = self.open()
        body = json.dumps(
            {"jsonrpc": "2.0", "method": "notifications/x", "params": {"a": 1}}, indent=2
        ).encode()
        self.post(body, session_id=session_id)
        self.assertEqual(
            child.written.split(b"\n")[-2],
            b'{"jsonrpc":"2.0","method":"notifications/x","params":{"a":1}}',
        )

    def test_a_body_on_several_lines_with_lone_surrogates_is_sent_escaped(self) -> None:
        """``"\\ud800"`` is valid JSON text (RFC 8259 section 8.2) that no UTF-8 holds:
        the line carries it escaped, as it came; before, the one-line rewrite's
        encoding raised UnicodeEncodeError out of ``post``."""
        child, session_id = self.open()
        body = (
            b'{\n "jsonrpc": "2.0", "method": "notifications/x",\n'
            b' "params": {"a": "\\ud800\\u00e9"}}'
        )
        self.post(body, session_id=session_id)
        line = child.written.split(b"\n")[-2]
        self.assertEqual(json.loads(line)["params"], {"a": "\ud800\u00e9"})


class BoundsTests(StdioTestCase):
    def test_a_silent_child_times_out_progress_keeps_it_going(self) -> None:
        child, session_id = self.open()
        posting = self.post(
            request(10, "tools/call", {"_meta": {"progressToken": 1}}), session_id=session_id
        )
        self.reactor.advance(20)
        child.say(
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": 1, "progress": 1},
            }
        )
        self.reactor.advance(20)
        self.assertFalse(posting.called)
        self.reactor.advance(10)
        self.assertEqual(self.failureResultOf(posting, UpstreamError).value.kind, "timeout")

    def test_a_line_too_long_kills_the_child(self) -> None:
        child, session_id = self.open()
        posting = self.post(request(10, "tools/call"), session_id=session_id)
        child.protocol.childDataReceived(1, b"x" * (MAX_LINE_BYTES + 1))
        self.assertEqual(child.signals, ["KILL"])
        child.exit(signal=9)
        error = self.failureResultOf(posting, UpstreamError).value
        self.assertEqual(error.kind, "unavailable")
        self.assertIn("on stdout", error.detail)

    def test_a_line_that_is_not_json_is_skipped(self) -> None:
        child, session_id = self.open()
        got: list[Any] = []
        posting = self.post(request(10, "tools/call"), got.append, session_id=session_id)
        child.protocol.childDataReceived(1, b"hello\n")
        self.assertFalse(posting.called)
        self.assertEqual(child.signals, [])  # skipped, not a reason to kill the child
        child.answer({"content": []})
        self.assertEqual(self.successResultOf(posting).status, 200)
        self.assertEqual(got, [{"jsonrpc": "2.0", "id": 10, "result": {"content": []}}])

    def test_hostile_lines_are_skipped(self) -> None:
        child, session_id = self.open()
        heard: list[Any] = []
        ensureDeferred(
            self.upstream.get_stream(heard.append, session_id, None, None, lambda r: None)
        )
        posting = self.post(request(10, "tools/call"), session_id=session_id)
        deep = b"[" * 300 + b"]" * 300  # read, but aigw could not write it again
        for line in (
            b"[" * 100_000 + b"\n",
            b'{"jsonrpc": "2.0", "method": "notifications/message", "params": %s}\n' % deep,
            b'{"jsonrpc": "2.0", "method": "notifications/progress", "params": [1]}\n',
            b'{"jsonrpc": "2.0", "id": "10", "result": {}}\n',
            b"42\n",
        ):
            child.protocol.childDataReceived(1, line)
        self.assertFalse(posting.called)
        self.assertEqual(heard, [])  # progress for no call in flight: dropped
        child.answer({})
        self.assertEqual(self.successResultOf(posting).status, 200)

    def test_stderr_is_logged_line_by_line_bounded(self) -> None:
        lines = Lines(8, truncate=True)
        self.assertEqual(lines.feed(b"one\ntw"), [b"one"])
        self.assertEqual(lines.feed(b"o\n0123456789abc\nend"), [b"two", b"01234567"])
        self.assertEqual(lines.feed(b"\n"), [b"end"])
        with self.assertRaises(LineTooLong):
            Lines(4).feed(b"12345")


class RestartTests(StdioTestCase):
    def test_killed_calls_fail_and_the_next_session_gets_a_new_process(self) -> None:
        child, session_id = self.open()
        posting = self.post(request(10, "tools/call"), session_id=session_id)
        child.exit(signal=9)
        error = self.failureResultOf(posting, UpstreamError).value
        self.assertEqual(
            (error.kind, error.detail), ("unavailable", "the process was killed by signal 9")
        )
        # the gateway's request with the old session: gone, so it re-initializes
        self.failureResultOf(
            self.post(request(11, "tools/call"), session_id=session_id), UpstreamSessionGone
        )
        opening = self.post(request(12, "initialize"), session_id=None)
        self.assertEqual(len(self.reactor.spawned), 1)  # the back-off first
        self.reactor.advance(BACKOFF_FIRST)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.reactor.spawned[-1].answer({"protocolVersion": "2025-06-18", "capabilities": {}})
        self.assertNotEqual(self.successResultOf(opening).session_id, session_id)

    def test_the_back_off_doubles_while_it_dies_young(self) -> None:
        waits = []
        for _ in range(7):
            count = len(self.reactor.spawned)
            opening = self.post(request(next(self.ids), "initialize"))
            before = self.reactor.seconds()
            while len(self.reactor.spawned) == count:
                self.reactor.advance(0.25)
            waits.append(self.reactor.seconds() - before)
            self.reactor.spawned[-1].exit(1)
            self.failureResultOf(opening, UpstreamError)
        self.assertEqual(waits, [0, 0.5, 1, 2, 4, 8, 16])

    def test_after_a_stable_run_the_back_off_starts_again(self) -> None:
        for _ in range(3):
            child, _ = self.open()
            child.exit(1)
            self.reactor.advance(5)
        child, _ = self.open()
        self.reactor.advance(STABLE_SECONDS)
        child.exit(1)
        self.post(request(next(self.ids), "initialize"))
        self.reactor.advance(BACKOFF_FIRST)
        self.assertEqual(len(self.reactor.spawned), 5)

    def test_a_back_off_longer_than_the_timeout_is_refused_at_once(self) -> None:
        self.upstream = StdioUpstream(attrs.evolve(CONFIG, timeout=1.0), self.reactor, environ={})
        for _ in range(2):
            child, _ = self.open()
            child.exit(1)
            self.reactor.advance(1)
        child, _ = self.open()
        child.exit(1)  # young again: 2 s
        error = self.failureResultOf(self.post(request(99, "initialize")), UpstreamError).value
        self.assertEqual((error.kind, error.detail), ("unavailable", "restarting in 2.0s"))

    def test_metrics_hear_of_children_as_of_connections(self) -> None:
        child, _ = self.open()
        child.exit(signal=9)
        self.reactor.advance(BACKOFF_FIRST)
        child, _ = self.open()
        child.protocol.childDataReceived(1, b"x" * (MAX_LINE_BYTES + 1))
        child.exit(signal=9)  # aigw killed it: not "lost"
        self.assertEqual(
            self.observer.connections,
            [
                UpstreamConnection("local", "opened"),
                UpstreamConnection("local", "lost", "was killed by signal 9"),
                UpstreamConnection("local", "opened"),
            ],
        )

    def test_a_stream_ends_with_its_process(self) -> None:
        child, session_id = self.open()
        stream = ensureDeferred(
            self.upstream.get_stream(lambda m: None, session_id, None, None, lambda r: None)
        )
        child.exit(1)
        self.assertEqual(self.failureResultOf(stream, UpstreamError).value.kind, "unavailable")
        gone = ensureDeferred(
            self.upstream.get_stream(lambda m: None, session_id, None, None, lambda r: None)
        )
        self.failureResultOf(gone, UpstreamSessionGone)


class StopTests(StdioTestCase):
    def test_close_closes_stdin_then_terms_then_kills(self) -> None:
        child, _ = self.open()
        closing = ensureDeferred(self.upstream.close())
        self.assertTrue(child.stdin_closed)
        self.reactor.advance(STOP_GRACE_SECONDS)
        self.assertEqual(child.signals, ["TERM"])
        self.reactor.advance(STOP_GRACE_SECONDS)
        self.assertEqual(child.signals, ["TERM", "KILL"])
        self.assertFalse(closing.called)
        child.exit(signal=9)
        self.successResultOf(closing)
        error = self.failureResultOf(self.post(request(1, "initialize")), UpstreamError).value
        self.assertEqual(error.kind, "unavailable")

    def test_a_child_that_exits_when_stdin_closes_gets_no_signal(self) -> None:
        child, _ = self.open()
        closing = ensureDeferred(self.upstream.close())
        child.exit(0)
        self.successResultOf(closing)
        self.reactor.advance(10)
        self.assertEqual(child.signals, [])


class PerUserTests(StdioTestCase):
    config = attrs.evolve(
        CONFIG, stdio=StdioConfig(scope="user", max_processes=2, idle_timeout=60.0)
    )

    def test_one_process_per_user_and_sessions_stay_theirs(self) -> None:
        alice, alice_session = self.open(ALICE)
        bob, bob_session = self.open(BOB)
        self.assertIsNot(alice, bob)
        self.assertNotEqual(alice_session, bob_session)
        posting = self.post(request(50, "tools/list"), session_id=alice_session, principal=BOB)
        self.failureResultOf(posting, UpstreamSessionGone)

    def test_a_users_own_process_sends_a_request_of_no_call_to_their_stream(self) -> None:
        """Every stream of a per-user process is that user's: the request may go to one."""
        child, session_id = self.open(ALICE)
        heard: list[Any] = []
        ensureDeferred(
            self.upstream.get_stream(
                heard.append, session_id, None, None, lambda r: None, principal=ALICE
            )
        )
        roots = {"jsonrpc": "2.0", "id": 5, "method": "roots/list"}
        child.say(roots)
        self.assertEqual(heard, [roots])

    def test_a_users_process_ping_is_answered_not_sent_to_their_stream(self) -> None:
        child, session_id = self.open(ALICE)
        heard: list[Any] = []
        ensureDeferred(
            self.upstream.get_stream(
                heard.append, session_id, None, None, lambda r: None, principal=ALICE
            )
        )
        child.say({"jsonrpc": "2.0", "id": 6, "method": "ping"})
        self.assertEqual(heard, [])
        self.assertEqual(child.received()[-1], {"jsonrpc": "2.0", "id": 6, "result": {}})

    def test_the_least_recently_used_idle_process_makes_room(self) -> None:
        alice, _ = self.open(ALICE)
        self.open(BOB)
        carol = attrs.evolve(ALICE, subject="carol")
        self.open(carol)
        self.assertTrue(alice.stdin_closed)
        self.assertEqual(len(self.reactor.spawned), 3)

    def test_when_every_process_is_busy_a_new_user_is_refused(self) -> None:
        for user in (ALICE, BOB):
            _, session_id = self.open(user)
            self.post(request(next(self.ids), "tools/call"), session_id=session_id, principal=user)
        carol = attrs.evolve(ALICE, subject="carol")
        error = self.failureResultOf(
            self.post(request(1, "initialize"), principal=carol), UpstreamError
        ).value
        self.assertIn("max_processes", error.detail)

    def test_an_idle_process_is_stopped(self) -> None:
        alice, _ = self.open(ALICE)
        self.reactor.advance(59)
        self.assertFalse(alice.stdin_closed)
        self.reactor.advance(1)
        self.assertTrue(alice.stdin_closed)
