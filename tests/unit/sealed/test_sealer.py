"""Sealed tokens: AES-256-GCM under HKDF-derived keys (RFC 5869), base64url (RFC 4648 §5).

MCP 2025-11-25 basic/transports "Session Management": a session id MUST only
contain visible ASCII characters (0x21 to 0x7E) and SHOULD be cryptographically
secure.
"""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aigw.sealed.sealer import Sealer, SealError

SECRET = b"s" * 32
OTHER = b"o" * 32

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
payloads = st.dictionaries(st.text(max_size=5), json_values, max_size=5)


def flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index % len(raw)] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


class SealerTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        sealer = Sealer(SECRET)
        self.assertEqual(sealer.open(sealer.seal({"a": [1, "é"]})), {"a": [1, "é"]})

    def test_tokens_are_visible_ascii(self) -> None:
        """basic/transports "Session Management": 0x21 to 0x7E only."""
        token = Sealer(SECRET).seal({"x": "\u2603" * 10})
        self.assertTrue(all(0x21 <= ord(c) <= 0x7E for c in token))

    def test_same_payload_seals_differently_each_time(self) -> None:
        """A random 96-bit nonce per token (NIST SP 800-38D §8.2.2)."""
        sealer = Sealer(SECRET)
        self.assertNotEqual(sealer.seal({"a": 1}), sealer.seal({"a": 1}))

    def test_deterministic_sealing_repeats_and_opens(self) -> None:
        sealer = Sealer(SECRET)
        token = sealer.seal({"a": 1}, b"x", deterministic=True)
        self.assertEqual(token, sealer.seal({"a": 1}, b"x", deterministic=True))
        self.assertNotEqual(token, sealer.seal({"a": 1}, b"y", deterministic=True))
        self.assertEqual(sealer.open(token, b"x"), {"a": 1})

    def test_short_secret_is_refused(self) -> None:
        self.assertRaises(ValueError, Sealer, b"x" * 31)
        self.assertRaises(ValueError, Sealer, SECRET, [b"short"])

    def test_other_secret_cannot_open(self) -> None:
        self.assertRaises(SealError, Sealer(OTHER).open, Sealer(SECRET).seal({}))

    def test_purposes_have_independent_keys(self) -> None:
        """HKDF info: one secret, one key per purpose; tokens do not cross purposes."""
        sessions = Sealer(SECRET, purpose="session")
        token = sessions.seal({"a": 1})
        self.assertRaises(SealError, sessions.for_purpose("cursor").open, token)
        self.assertEqual(Sealer(SECRET).for_purpose("session").open(token), {"a": 1})

    def test_old_secrets_still_open_after_rotation(self) -> None:
        token = Sealer(OTHER).seal({"v": 1})
        rotated = Sealer(SECRET, [OTHER])
        self.assertEqual(rotated.open(token), {"v": 1})
        self.assertEqual(Sealer(SECRET).open(rotated.seal({"v": 2})), {"v": 2})

    def test_retired_secret_no_longer_opens(self) -> None:
        token = Sealer(OTHER).seal({"v": 1})
        self.assertRaises(SealError, Sealer(SECRET).open, token)

    def test_associated_data_must_match(self) -> None:
        sealer = Sealer(SECRET)
        token = sealer.seal({"a": 1}, b"alice")
        self.assertRaises(SealError, sealer.open, token, b"bob")
        self.assertRaises(SealError, sealer.open, token)

    def test_random_sealers_do_not_share_keys(self) -> None:
        self.assertRaises(SealError, Sealer.random().open, Sealer.random().seal({}))

    def test_malformed_tokens_raise_seal_error_only(self) -> None:
        sealer = Sealer(SECRET)
        good = sealer.seal({"a": 1})
        for bad in (
            "",
            "abc",
            "!" * 60,
            good + "=",
            good[:-1],
            good + "A",
            " " + good,
            5,
            None,
            "é" * 60,
        ):
            self.assertRaises(SealError, sealer.open, bad)

    def test_non_canonical_base64_is_refused(self) -> None:
        sealer = Sealer(SECRET)
        token = sealer.seal({"a": 1})
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        self.assertIn(len(token) % 4, (2, 3))  # 37 bytes: the last character has unused bits
        last = alphabet[alphabet.index(token[-1]) ^ 1]  # same bytes when decoded leniently
        self.assertEqual(
            base64.urlsafe_b64decode(token[:-1] + last + "=="),
            base64.urlsafe_b64decode(token + "=="),
        )
        self.assertRaises(SealError, sealer.open, token[:-1] + last)

    def test_unknown_version_is_refused(self) -> None:
        sealer = Sealer(SECRET)
        raw = bytearray(base64.urlsafe_b64decode(sealer.seal({}) + "=="))
        raw[0] = 2
        token = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        with self.assertRaises(SealError) as caught:
            sealer.open(token)
        self.assertIn("version", str(caught.exception))

    def test_overlong_tokens_are_refused_before_decoding(self) -> None:
        sealer = Sealer(SECRET, max_token_length=100)
        self.assertRaises(SealError, sealer.open, "A" * 101)

    def test_payload_too_large_to_open_is_not_sealed(self) -> None:
        sealer = Sealer(SECRET, max_token_length=100)
        self.assertRaises(SealError, sealer.seal, {"x": "y" * 100})

    def test_non_object_payload_is_refused_on_open(self) -> None:
        """A token whose plaintext is JSON but not an object (never made by seal) is refused."""
        sealer = Sealer(SECRET)
        key = sealer._current  # forge an authentic non-object
        header = bytes((1, key.key_id))
        nonce = b"\0" * 12
        raw = header + nonce + key.aead.encrypt(nonce, b"[1]", header)
        token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        self.assertRaises(SealError, sealer.open, token)


class SealerPropertyTests(SynchronousTestCase):
    sealer = Sealer(SECRET, purpose="test")

    @given(payloads, st.binary(max_size=20))
    def test_any_object_round_trips(self, payload: dict[str, object], aad: bytes) -> None:
        self.assertEqual(self.sealer.open(self.sealer.seal(payload, aad), aad), payload)

    @given(payloads, st.integers(min_value=0))
    def test_any_flipped_bit_is_detected(self, payload: dict[str, object], index: int) -> None:
        token = self.sealer.seal(payload)
        self.assertRaises(SealError, self.sealer.open, flip(token, index))

    @given(st.text(max_size=300))
    def test_arbitrary_strings_raise_seal_error_only(self, token: str) -> None:
        with self.assertRaises(SealError):
            self.sealer.open(token)
