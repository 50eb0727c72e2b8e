"""The fakes of tests/fakes.py keep to the Protocols they stand in for.

mypy checks aigw/ only, so each fake is held to its Protocol here: every member
the Protocol declares is there, every method takes the same parameters (names,
kinds, defaults) and is a coroutine exactly when the Protocol's is.  That is
stricter than ``isinstance`` against a ``runtime_checkable`` Protocol, which
looks at names only.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import SynchronousTestCase

from aigw.events import (
    AccessDecided,
    AuthenticationRefused,
    AuthServerFetched,
    GatewayObserver,
    RequestFinished,
    ToolFlagged,
    UpstreamConnection,
)
from aigw.gateway.access import AccessPolicy
from aigw.principal import ANONYMOUS
from aigw.store.api import Store, UserToken
from aigw.upstream.api import BodyReader, UpstreamCredentials, UpstreamError, UpstreamTransport
from tests.fakes import (
    FakeCredentials,
    FakePolicy,
    FakeTransport,
    MemoryStore,
    RecordingObserver,
    RecordingReader,
    Scripted,
    parameters,
    protocol_members,
)


class ConformanceTests(SynchronousTestCase):
    def assert_conforms(self, fake: object, protocol: type) -> None:
        members = protocol_members(protocol)
        self.assertTrue(members, protocol)
        for name, declared in members.items():
            self.assertTrue(hasattr(fake, name), f"{type(fake).__name__} lacks {name}")
            if declared is None:
                continue
            method = getattr(fake, name)
            where = f"{type(fake).__name__}.{name}"
            self.assertEqual(parameters(method), parameters(declared), where)
            self.assertEqual(
                inspect.iscoroutinefunction(method), inspect.iscoroutinefunction(declared), where
            )

    def test_fake_transport(self) -> None:
        self.assert_conforms(FakeTransport(), UpstreamTransport)

    def test_fake_credentials(self) -> None:
        self.assert_conforms(FakeCredentials(), UpstreamCredentials)

    def test_memory_store(self) -> None:
        self.assert_conforms(MemoryStore(), Store)

    def test_fake_policy(self) -> None:
        self.assert_conforms(FakePolicy(), AccessPolicy)

    def test_recording_observer(self) -> None:
        self.assert_conforms(RecordingObserver(), GatewayObserver)

    def test_recording_reader(self) -> None:
        self.assert_conforms(RecordingReader(), BodyReader)

    def test_a_missing_member_is_caught(self) -> None:
        class Partial:
            async def headers(self, principal: object, extra: int = 0) -> None: ...

        with self.assertRaises(self.failureException):
            self.assert_conforms(Partial(), UpstreamCredentials)


def request(method: str, request_id: int | None = 1, **params: Any) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if request_id is not None:
        message["id"] = request_id
    return json.dumps(message).encode()


class FakeTransportTests(SynchronousTestCase):
    def post(self, transport: FakeTransport, body: bytes, **kwargs: Any) -> list[Any]:
        received: list[Any] = []
        self.successResultOf(ensureDeferred(transport.post(body, received.append, **kwargs)))
        return received

    def test_scripted_answers_carry_the_request_id_and_the_last_one_stays(self) -> None:
        transport = FakeTransport()
        transport.answer("tools/list", {"tools": [1]})
        transport.answer("tools/list", {"tools": [2]})
        self.assertEqual(
            self.post(transport, request("tools/list", 7)),
            [{"jsonrpc": "2.0", "id": 7, "result": {"tools": [1]}}],
        )
        for _ in range(2):
            (answer,) = self.post(transport, request("tools/list", 8))
            self.assertEqual(answer["result"], {"tools": [2]})

    def test_unscripted_methods_are_not_found_and_notifications_accepted(self) -> None:
        transport = FakeTransport()
        (answer,) = self.post(transport, request("tools/call"))
        self.assertEqual(answer["error"]["code"], -32601)
        received: list[Any] = []
        d = ensureDeferred(transport.post(request("notifications/x", None), received.append))
        self.assertEqual(self.successResultOf(d).status, 202)
        self.assertEqual(received, [])

    def test_requests_are_recorded_with_principal_and_credentials(self) -> None:
        credentials = FakeCredentials([(b"X-Api-Key", b"k")])
        transport = FakeTransport("files", credentials)
        transport.answer("ping", {})
        self.post(transport, request("ping"), session_id="s1", principal=ANONYMOUS)
        (sent,) = transport.requests
        self.assertEqual((sent.kind, sent.message["method"]), ("post", "ping"))
        self.assertEqual((sent.session_id, sent.principal), ("s1", ANONYMOUS))
        self.assertEqual(sent.credentials, ((b"X-Api-Key", b"k"),))
        self.assertEqual(credentials.principals, [ANONYMOUS])

    def test_scripted_and_credential_errors_are_raised(self) -> None:
        transport = FakeTransport()
        transport.fail("tools/call", "timeout")
        d = ensureDeferred(transport.post(request("tools/call"), lambda message: None))
        self.assertEqual(self.failureResultOf(d, UpstreamError).value.kind, "timeout")
        refused = FakeTransport(credentials=FakeCredentials(error=UpstreamError("f", "no", "x")))
        d = ensureDeferred(refused.delete("s1", None))
        self.failureResultOf(d, UpstreamError)
        self.assertEqual(refused.requests, [])

    def test_readers_and_streams(self) -> None:
        transport = FakeTransport()
        transport.script("subscriptions/listen", Scripted(({"method": "n"},)))
        readers: list[BodyReader] = []
        received: list[Any] = []
        d = ensureDeferred(
            transport.listen(
                request("subscriptions/listen"), received.append, "2026-07-28", {}, readers.append
            )
        )
        self.assertEqual(self.successResultOf(d).status, 200)
        self.assertEqual(readers, transport.readers)
        self.assertEqual(received, [{"method": "n"}])
        d = ensureDeferred(transport.get_stream(received.append, "s", None, None, readers.append))
        self.assertEqual(self.successResultOf(d).status, 405)


class FakePolicyTests(SynchronousTestCase):
    def test_tool_entry_then_backend_entry_then_default(self) -> None:
        policy = FakePolicy({("files", "rm"): False, ("mail", None): False}, default=True)
        self.assertEqual(policy.decide(ANONYMOUS, "files", "rm").rule, "table[files, rm]")
        self.assertFalse(policy.decide(ANONYMOUS, "files", "rm"))
        self.assertFalse(policy.decide(ANONYMOUS, "mail", "send"))
        decision = policy.decide(ANONYMOUS, "files", "read")
        self.assertEqual((decision.allowed, decision.rule), (True, "default"))
        self.assertEqual(policy.asked[0], (ANONYMOUS, "files", "rm", "tool", None))
        policy.decide(ANONYMOUS, "files", "guide", kind="prompt", method="prompts/get")
        self.assertEqual(policy.asked[-1][3:], ("prompt", "prompts/get"))


class RecordingObserverTests(SynchronousTestCase):
    def test_each_kind_in_its_list(self) -> None:
        observer = RecordingObserver()
        finished = RequestFinished("ping", None, None, None, "ok", None, 0.1, 0.0)
        decided = AccessDecided(ANONYMOUS, "files", None, True, "access.default")
        refused = AuthenticationRefused(401, "missing")
        connection = UpstreamConnection("files", "opened")
        fetched = AuthServerFetched("jwks", True)
        observer.request_finished(finished)
        observer.access_decided(decided)
        observer.authentication_refused(refused)
        observer.upstream_connection(connection)
        observer.auth_server_fetched(fetched)
        flagged = ToolFlagged("files", "tool", "rm", ("sidenote",), ("sidenote in x",), "warned")
        observer.tool_flagged(flagged)
        self.assertEqual(observer.flagged, [flagged])
        self.assertEqual(observer.requests, [finished])
        self.assertEqual(observer.decisions, [decided])
        self.assertEqual(observer.refusals, [refused])
        self.assertEqual(observer.connections, [connection])
        self.assertEqual(observer.fetches, [fetched])


class MemoryStoreTests(SynchronousTestCase):
    def test_revoking_matches_every_given_key(self) -> None:
        store = MemoryStore()
        for issuer, subject, backend in [("i", "a", "x"), ("i", "a", "y"), ("i", "b", "x")]:
            token = UserToken(issuer, subject, backend, access_token="t")
            self.successResultOf(ensureDeferred(store.put_user_token(token)))
        gone = ensureDeferred(store.revoke_user_tokens(subject="a", backend="x"))
        self.assertEqual(self.successResultOf(gone), 1)
        listed = self.successResultOf(ensureDeferred(store.list_user_tokens()))
        self.assertEqual(sorted((t.subject, t.backend) for t in listed), [("a", "y"), ("b", "x")])
        self.failureResultOf(ensureDeferred(store.revoke_user_tokens()), ValueError)
