"""Sealed session ids (MCP 2025-11-25 basic/transports "Session Management")."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import (
    OPENED_MAX,
    BackendSession,
    SessionCodec,
    SessionNotFound,
    SessionState,
)

SECRET = b"k" * 32
ISSUER = "https://idp.example"


def state(subject: str = "alice", created: float = 1000.0) -> SessionState:
    return SessionState(
        issuer=ISSUER,
        subject=subject,
        created=created,
        protocol_version="2025-11-25",
        backends=(
            BackendSession("alpha", "sid-1", "2025-11-25", {"tools": {"listChanged": True}}),
            BackendSession("beta", None, "2025-06-18", {}),
        ),
    )


class SessionCodecTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.codec = SessionCodec(Sealer(SECRET), self.clock.seconds, ttl=3600.0)

    def test_round_trip(self) -> None:
        self.assertEqual(self.codec.open(self.codec.issue(state()), ISSUER, "alice"), state())

    def test_client_capabilities_travel_in_the_id(self) -> None:
        """What the client can answer is sealed, so any process can relay for it; an id
        that does not say (issued before) opens as not known, not as "nothing"."""
        declared = {"elicitation": {"url": {}}, "sampling": {}}
        sealed = attrs.evolve(state(), client_capabilities=declared)
        opened = self.codec.open(self.codec.issue(sealed), ISSUER, "alice")
        self.assertEqual(opened.client_capabilities, declared)
        self.assertIsNone(
            self.codec.open(self.codec.issue(state()), ISSUER, "alice").client_capabilities
        )

    def test_session_id_is_visible_ascii(self) -> None:
        """ "The session ID MUST only contain visible ASCII characters (0x21 to 0x7E)"."""
        session_id = self.codec.issue(state())
        self.assertTrue(all(0x21 <= ord(c) <= 0x7E for c in session_id))

    def test_session_ids_are_unique(self) -> None:
        """The session ID SHOULD be globally unique and cryptographically secure."""
        self.assertNotEqual(self.codec.issue(state()), self.codec.issue(state()))

    def test_another_users_session_does_not_open(self) -> None:
        """A session bound to alice is not found for bob (user bound as associated data)."""
        session_id = self.codec.issue(state("alice"))
        with self.assertRaises(SessionNotFound) as caught:
            self.codec.open(session_id, ISSUER, "bob")
        self.assertEqual(caught.exception.reason, "invalid")

    def test_same_subject_from_another_issuer_does_not_open(self) -> None:
        session_id = self.codec.issue(state("alice"))
        self.assertRaises(SessionNotFound, self.codec.open, session_id, "https://evil", "alice")

    def test_issuer_subject_split_is_unambiguous(self) -> None:
        codec = self.codec
        session_id = codec.issue(SessionState("ab", "c", 1000.0, "v", ()))
        self.assertRaises(SessionNotFound, codec.open, session_id, "a", "bc")

    def test_expired_session_is_not_found(self) -> None:
        """A server MAY terminate the session at any time; then it answers 404."""
        session_id = self.codec.issue(state(created=1000.0))
        self.clock.advance(3600.0)
        self.codec.open(session_id, ISSUER, "alice")  # created + ttl == now: still valid
        self.clock.advance(0.001)
        with self.assertRaises(SessionNotFound) as caught:
            self.codec.open(session_id, ISSUER, "alice")
        self.assertEqual(caught.exception.reason, "expired")

    def test_ended_session_is_not_found(self) -> None:
        """basic/transports "Session Management": a session the server terminated
        (DELETE) is answered 404 from then on, though its sealed id still opens."""
        session_id = self.codec.issue(state(created=1000.0))
        self.codec.open(session_id, ISSUER, "alice")
        self.codec.end(session_id, state(created=1000.0))
        with self.assertRaises(SessionNotFound) as caught:
            self.codec.open(session_id, ISSUER, "alice")
        self.assertEqual(caught.exception.reason, "ended")
        self.clock.advance(3600.001)
        with self.assertRaises(SessionNotFound) as caught:
            self.codec.open(session_id, ISSUER, "alice")
        self.assertEqual(caught.exception.reason, "expired")
        self.assertEqual(len(self.codec._ended), 0)

    def test_a_session_ended_elsewhere_is_not_found_until_it_expires(self) -> None:
        """What another process's ``end`` returns, told here (``ended_elsewhere``), ends
        the id here too, even once opened; never for longer than this codec's ttl, and
        nothing expired or malformed is remembered."""
        session_id = self.codec.issue(state(created=1000.0))
        self.codec.open(session_id, ISSUER, "alice")
        other = SessionCodec(Sealer(SECRET), self.clock, ttl=3600.0)
        ended = other.end(session_id, state(created=1000.0))
        self.assertEqual(ended.expires, 4600.0)
        self.codec.ended_elsewhere(ended.digest, ended.expires)
        with self.assertRaises(SessionNotFound) as caught:
            self.codec.open(session_id, ISSUER, "alice")
        self.assertEqual(caught.exception.reason, "ended")
        self.codec.ended_elsewhere(b"x" * 31, 4000.0)  # not a SHA-256
        self.codec.ended_elsewhere(b"y" * 32, 999.0)  # expired already
        self.codec.ended_elsewhere(b"z" * 32, 10.0**9)  # beyond any id issued now
        self.assertEqual(len(self.codec._ended), 2)
        self.assertEqual(self.codec._ended.get(b"z" * 32), 1000.0 + 3600.0)

    def test_opened_session_is_remembered_per_user_and_bounded(self) -> None:
        """The memo of opened ids is keyed by the user too: another user's token with a
        remembered id still finds nothing; and it holds at most OPENED_MAX ids."""
        session_id = self.codec.issue(state("alice"))
        self.assertEqual(self.codec.open(session_id, ISSUER, "alice").subject, "alice")
        self.assertIs(
            self.codec.open(session_id, ISSUER, "alice"),
            self.codec.open(session_id, ISSUER, "alice"),
        )
        self.assertRaises(SessionNotFound, self.codec.open, session_id, ISSUER, "bob")
        for n in range(OPENED_MAX + 10):
            self.codec.open(self.codec.issue(state(f"user{n}")), ISSUER, f"user{n}")
        self.assertEqual(len(self.codec._opened), OPENED_MAX)

    def test_garbage_is_not_found(self) -> None:
        for bad in ("", "x", "not a session", "A" * 5000):
            self.assertRaises(SessionNotFound, self.codec.open, bad, ISSUER, "alice")

    def test_session_sealed_for_another_purpose_is_not_found(self) -> None:
        token = Sealer(SECRET).for_purpose("cursor").seal({"f": 1})
        self.assertRaises(SessionNotFound, self.codec.open, token, ISSUER, "alice")

    def test_clock_may_be_given_as_a_reactor(self) -> None:
        codec = SessionCodec(Sealer(SECRET), self.clock, ttl=1.0)
        session_id = codec.issue(state(created=1000.0))
        self.clock.advance(2.0)
        self.assertRaises(SessionNotFound, codec.open, session_id, ISSUER, "alice")

    def test_rotated_secret_keeps_sessions(self) -> None:
        session_id = self.codec.issue(state())
        rotated = SessionCodec(Sealer(b"n" * 32, [SECRET]), self.clock.seconds, 3600.0)
        self.assertEqual(rotated.open(session_id, ISSUER, "alice"), state())

    def test_session_id_stays_small(self) -> None:
        """It travels in a header on every request: a two-backend session is well under 1 KiB."""
        self.assertLess(len(self.codec.issue(state())), 600)

    @given(st.text(), st.text(), st.floats(min_value=0, max_value=1000), st.text())
    def test_any_state_round_trips(
        self, issuer: str, subject: str, created: float, version: str
    ) -> None:
        original = SessionState(issuer, subject, created, version, ())
        self.assertEqual(self.codec.open(self.codec.issue(original), issuer, subject), original)
