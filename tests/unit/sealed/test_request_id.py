"""Ids of requests relayed from backends to the client (MCP 2025-11-25 client/sampling,
client/elicitation, client/roots; basic/utilities/cancellation and progress)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aigw.sealed.request_id import InvalidId, RequestIdCodec
from aigw.sealed.sealer import Sealer

SECRET = b"i" * 32


class RequestIdTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.codec = RequestIdCodec(Sealer(SECRET))

    def test_round_trip_keeps_backend_and_id_type(self) -> None:
        for upstream_id in (0, 7, -3, "abc", ""):
            wrapped = self.codec.wrap("alpha", upstream_id, "b1")
            self.assertEqual(self.codec.unwrap(wrapped, "b1"), ("alpha", upstream_id))

    def test_wrapped_id_is_a_string(self) -> None:
        """basic "Requests": a request id MUST be a string or integer."""
        self.assertIsInstance(self.codec.wrap("alpha", 1, "b1"), str)

    def test_wrapping_is_deterministic(self) -> None:
        """So an upstream notifications/cancelled can be relayed with the id the client saw."""
        self.assertEqual(self.codec.wrap("a", 1, "b1"), self.codec.wrap("a", 1, "b1"))

    def test_different_requests_get_different_ids(self) -> None:
        """basic "Requests": the id MUST NOT have been used before in the same session."""
        ids = {
            self.codec.wrap("a", 1, "b1"),
            self.codec.wrap("a", 2, "b1"),
            self.codec.wrap("b", 1, "b1"),
            self.codec.wrap("a", "1", "b1"),
        }
        self.assertEqual(len(ids), 4)

    def test_forged_id_is_refused(self) -> None:
        for forged in ("1", 1, None, "x" * 80):
            self.assertRaises(InvalidId, self.codec.unwrap, forged, "b1")

    def test_id_of_another_session_is_refused(self) -> None:
        """A client cannot answer, through its session, a request sent on another session."""
        wrapped = self.codec.wrap("alpha", 1, "session-1")
        self.assertRaises(InvalidId, self.codec.unwrap, wrapped, "session-2")

    def test_tampered_id_cannot_reach_another_backend(self) -> None:
        wrapped = self.codec.wrap("alpha", 1, "b1")
        for index in range(len(wrapped)):
            swapped = "A" if wrapped[index] != "A" else "B"
            tampered = wrapped[:index] + swapped + wrapped[index + 1 :]
            self.assertRaises(InvalidId, self.codec.unwrap, tampered, "b1")

    @given(st.text(min_size=1, max_size=32), st.text() | st.integers(), st.text(max_size=40))
    def test_any_id_round_trips(self, backend: str, upstream_id: str | int, binding: str) -> None:
        wrapped = self.codec.wrap(backend, upstream_id, binding)
        self.assertEqual(self.codec.unwrap(wrapped, binding), (backend, upstream_id))


class OwnRequestIdTests(SynchronousTestCase):
    """aigw's own requests to a client (asked on a 2026-07-28 backend's behalf): the id
    names the process waiting for the answer and where its peers reach it."""

    def setUp(self) -> None:
        self.codec = RequestIdCodec(Sealer(SECRET))

    def test_round_trip(self) -> None:
        wrapped = self.codec.wrap_own("p1", "q", "b1", "http://10.0.0.5:1975/mcp")
        self.assertEqual(
            self.codec.unwrap_own(wrapped, "b1"), ("p1", "q", "http://10.0.0.5:1975/mcp")
        )
        self.assertEqual(self.codec.unwrap_own(self.codec.wrap_own("p", "q", "b1"), "b1")[2], None)

    def test_bound_to_the_session(self) -> None:
        with self.assertRaises(InvalidId):
            self.codec.unwrap_own(self.codec.wrap_own("p", "q", "b1"), "b2")

    def test_a_backends_relayed_id_is_not_one_of_aigws_own_nor_the_reverse(self) -> None:
        with self.assertRaises(InvalidId):
            self.codec.unwrap_own(self.codec.wrap("alpha", 1, "b1"), "b1")
        with self.assertRaises(InvalidId):
            self.codec.unwrap(self.codec.wrap_own("p", "q", "b1"), "b1")
