"""aigw's own ``requestState`` (MCP 2026-07-28 basic/patterns/mrtr "Server Requirements"
4-5): integrity protected, bound to the user, expiring, bound to its request."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aigw.sealed.request_state import (
    InvalidState,
    ParkState,
    RequestStateCodec,
    request_digest,
)
from aigw.sealed.sealer import Sealer

SECRET = b"s" * 32
CALL = {"name": "ask", "arguments": {"q": 1}}


class RequestStateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.codec = RequestStateCodec(Sealer(SECRET))
        self.digest = request_digest("tools/call", CALL)
        self.state = ParkState("p1", "http://10.0.0.5:1975/mcp", "k1", 100.0, self.digest)
        self.token = self.codec.seal(self.state, "https://as", "alice")

    def test_round_trip(self) -> None:
        opened = self.codec.open(self.token, "https://as", "alice", self.digest, 99.0)
        self.assertEqual(opened, self.state)

    def test_another_user_cannot_present_it(self) -> None:
        for issuer, subject in (("https://as", "bob"), ("https://other", "alice")):
            with self.assertRaises(InvalidState):
                self.codec.open(self.token, issuer, subject, self.digest, 99.0)

    def test_it_expires(self) -> None:
        with self.assertRaisesRegex(InvalidState, "expired"):
            self.codec.open(self.token, "https://as", "alice", self.digest, 100.5)

    def test_it_answers_only_its_own_request(self) -> None:
        other = request_digest("tools/call", {**CALL, "arguments": {"q": 2}})
        with self.assertRaisesRegex(InvalidState, "another request"):
            self.codec.open(self.token, "https://as", "alice", other, 99.0)

    def test_the_retrys_own_params_are_not_part_of_the_request(self) -> None:
        """mrtr "Basic Workflow": the retry adds inputResponses, requestState and _meta."""
        retry = {**CALL, "inputResponses": {"q1": {}}, "requestState": "x", "_meta": {"a": 1}}
        self.assertEqual(request_digest("tools/call", retry), self.digest)
        self.assertNotEqual(request_digest("prompts/get", CALL), self.digest)

    @given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
    def test_any_altered_byte_fails(self, position: int, value: int) -> None:
        token = self.token
        position %= len(token)
        altered = token[:position] + chr(value) + token[position + 1 :]
        if altered == token:
            return
        with self.assertRaises(InvalidState):
            self.codec.open(altered, "https://as", "alice", self.digest, 99.0)

    def test_not_a_string_fails(self) -> None:
        for token in (None, 7, ["x"], {"k": 1}):
            with self.assertRaises(InvalidState):
                self.codec.open(token, "https://as", "alice", self.digest, 99.0)
