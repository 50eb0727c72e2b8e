"""The per-user upstream session pool: LRU bound, idle expiry on the reactor clock,
shared opens, and a pause before retrying a backend that failed."""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.gateway.pool import RETRY_SECONDS, UpstreamSessionPool
from aigw.principal import ANONYMOUS, Principal
from aigw.sealed.session_id import BackendSession


def user(sub: str) -> Principal:
    return attrs.evolve(ANONYMOUS, issuer="iss", subject=sub)


class Backends:
    """Opens numbered upstream sessions; records opens and ends, and for whom."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.ended: list[str] = []
        self.opened_for: list[str] = []
        self.ended_for: list[str] = []
        self.down: set[str] = set()
        self.gate: Deferred[None] | None = None
        self.count = 0

    async def open(self, principal: Principal, names: list[str]) -> list[BackendSession]:
        self.opened_for.append(principal.subject)
        if self.gate is not None:
            await self.gate
        sessions = []
        for name in names:
            self.opened.append(name)
            if name in self.down:
                continue
            self.count += 1
            sessions.append(BackendSession(name, f"{name}-{self.count}", "2025-11-25"))
        return sessions

    async def end(self, session: BackendSession, principal: Principal) -> None:
        assert session.session_id is not None
        self.ended.append(session.session_id)
        self.ended_for.append(principal.subject)


class PoolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.backends = Backends()
        self.pool = UpstreamSessionPool(
            self.clock, self.backends.open, self.backends.end, max_entries=3, idle_seconds=60
        )

    def sessions(self, sub: str, names: list[str]) -> dict[str, BackendSession]:
        result: dict[str, BackendSession] = self.successResultOf(
            ensureDeferred(self.pool.sessions(user(sub), names))
        )
        return result

    def test_a_user_reuses_their_sessions_and_never_gets_another_users(self) -> None:
        first = self.sessions("alice", ["a", "b"])
        again = self.sessions("alice", ["a", "b"])
        other = self.sessions("bob", ["a"])
        self.assertEqual(first, again)
        self.assertNotEqual(other["a"].session_id, first["a"].session_id)
        self.assertEqual(self.backends.opened, ["a", "b", "a"])

    def test_the_same_subject_at_another_issuer_is_another_user(self) -> None:
        """RFC 7519 §4.1.2: a subject is unique within its issuer only (``Principal.user``)."""
        first = self.sessions("alice", ["a"])
        elsewhere = attrs.evolve(user("alice"), issuer="other-iss")
        other = self.successResultOf(ensureDeferred(self.pool.sessions(elsewhere, ["a"])))
        self.assertNotEqual(other["a"].session_id, first["a"].session_id)
        self.assertEqual(self.backends.opened, ["a", "a"])

    def test_idle_sessions_expire_and_are_ended(self) -> None:
        first = self.sessions("alice", ["a"])
        self.clock.advance(59)
        self.assertEqual(self.sessions("alice", ["a"]), first)
        self.clock.advance(61)
        renewed = self.sessions("alice", ["a"])
        self.assertNotEqual(renewed["a"].session_id, first["a"].session_id)
        self.assertEqual(self.backends.ended, [first["a"].session_id])

    def test_the_least_recently_used_session_is_evicted_and_ended(self) -> None:
        oldest = self.sessions("u1", ["a"])["a"]
        self.sessions("u2", ["a"])
        self.sessions("u3", ["a"])
        self.sessions("u4", ["a"])
        self.assertEqual(len(self.pool), 3)
        self.assertEqual(self.backends.ended, [oldest.session_id])

    def test_concurrent_first_requests_share_one_open(self) -> None:
        self.backends.gate = Deferred()
        one = ensureDeferred(self.pool.sessions(user("alice"), ["a"]))
        two = ensureDeferred(self.pool.sessions(user("alice"), ["a"]))
        self.backends.gate.callback(None)
        self.assertEqual(self.successResultOf(one), self.successResultOf(two))
        self.assertEqual(self.backends.opened, ["a"])

    def test_a_failed_backend_is_retried_only_after_a_pause(self) -> None:
        self.backends.down.add("a")
        self.assertEqual(self.sessions("alice", ["a", "b"]).keys(), {"b"})
        self.backends.down.clear()
        self.assertEqual(self.sessions("alice", ["a", "b"]).keys(), {"b"})
        self.clock.advance(RETRY_SECONDS + 1)
        self.assertEqual(self.sessions("alice", ["a", "b"]).keys(), {"a", "b"})
        self.assertEqual(self.backends.opened, ["a", "b", "a"])

    def test_a_repaired_session_replaces_and_ends_the_old_one(self) -> None:
        old = self.sessions("alice", ["a"])["a"]
        new = BackendSession("a", "a-new", "2025-11-25")
        self.pool.put((("iss", "alice"), "a"), new, user("alice"))
        self.assertEqual(self.sessions("alice", ["a"])["a"], new)
        self.assertEqual(self.backends.ended, [old.session_id])

    def test_close_ends_everything(self) -> None:
        self.sessions("alice", ["a", "b"])
        self.successResultOf(ensureDeferred(self.pool.close()))
        self.assertEqual(sorted(self.backends.ended), ["a-1", "b-2"])
        self.assertEqual(len(self.pool), 0)

    def test_sessions_are_opened_and_ended_on_behalf_of_their_user(self) -> None:
        """The backends' credentials are asked with the user's principal (upstream/api.py),
        for the opening and for the DELETE when the session expires."""
        self.sessions("alice", ["a"])
        self.sessions("bob", ["a"])
        self.clock.advance(61)
        self.sessions("carol", ["b"])
        self.assertEqual(self.backends.opened_for, ["alice", "bob", "carol"])
        self.assertEqual(sorted(self.backends.ended_for), ["alice", "bob"])
