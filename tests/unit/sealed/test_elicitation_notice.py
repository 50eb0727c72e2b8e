"""The note a process sends the one that asked a URL elicitation: sealed with the
deployment's key, for one process, naming the user, expiring."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.sealed.elicitation_notice import (
    NOTICE_TTL,
    ElicitationNotice,
    ElicitationNoticeCodec,
    InvalidNotice,
)
from aigw.sealed.sealer import Sealer

SECRET = b"s" * 32
NOTICE = ElicitationNotice("e-1", "https://as", "alice")


class ElicitationNoticeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.codec = ElicitationNoticeCodec(Sealer(SECRET))
        self.token = self.codec.seal(NOTICE, "proc-a", 100.0)

    def test_round_trip_in_the_process_it_was_sealed_for(self) -> None:
        self.assertEqual(self.codec.open(self.token, "proc-a", 100.0 + NOTICE_TTL), NOTICE)

    def test_another_process_cannot_open_it(self) -> None:
        with self.assertRaisesRegex(InvalidNotice, "this aigw process"):
            self.codec.open(self.token, "proc-b", 100.0)

    def test_it_expires(self) -> None:
        with self.assertRaisesRegex(InvalidNotice, "expired"):
            self.codec.open(self.token, "proc-a", 100.0 + NOTICE_TTL + 1)

    def test_another_deployments_key_or_purpose_does_not_open_it(self) -> None:
        token = ElicitationNoticeCodec(Sealer(b"t" * 32)).seal(NOTICE, "proc-a", 100.0)
        with self.assertRaises(InvalidNotice):
            self.codec.open(token, "proc-a", 100.0)
        other_purpose = Sealer(SECRET).for_purpose("user-oauth-state").seal({"n": "e-1"})
        with self.assertRaises(InvalidNotice):
            self.codec.open(other_purpose, "proc-a", 100.0)

    def test_malformed_payloads_and_values_are_refused(self) -> None:
        sealer = Sealer(SECRET).for_purpose("elicitation-notice")
        aad = b'["elicitation-notice", "proc-a"]'
        for payload in (
            {"n": "e", "i": "https://as", "e": 200.0},
            {"n": 1, "i": "https://as", "s": "alice", "e": 200.0},
            {"n": "e", "i": "https://as", "s": "alice", "e": True},
            {"n": "e", "i": "https://as", "s": "alice", "e": "later"},
        ):
            with self.subTest(payload=payload), self.assertRaisesRegex(InvalidNotice, "malformed"):
                self.codec.open(sealer.seal(payload, aad), "proc-a", 100.0)
        for value in (None, 7, "", "not a token", "a" * 5000):
            with self.subTest(value=value), self.assertRaises(InvalidNotice):
                self.codec.open(value, "proc-a", 100.0)
