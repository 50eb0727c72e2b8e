"""The gateway's sealed pagination cursor (MCP 2025-11-25 server/utilities/pagination)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aigw.sealed.cursor import CursorCodec, InvalidCursor
from aigw.sealed.sealer import Sealer

SECRET = b"c" * 32


class CursorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.codec = CursorCodec(Sealer(SECRET))

    def test_round_trip_keeps_backend_order_and_cursors(self) -> None:
        pending = {"beta": "page-2", "alpha": None}
        cursor = self.codec.encode(pending, "session-1", "tools/list")
        decoded = self.codec.decode(cursor, "session-1", "tools/list")
        self.assertEqual(list(decoded.items()), [("beta", "page-2"), ("alpha", None)])

    def test_cursor_is_opaque(self) -> None:
        """ "Cursors MUST be treated as opaque tokens": no upstream cursor shows through."""
        cursor = self.codec.encode({"alpha": "secret-offset-42"}, "s", "tools/list")
        self.assertNotIn("secret", cursor)

    def test_forged_cursor_is_invalid(self) -> None:
        """ "Error Handling": invalid cursors SHOULD result in -32602 (Invalid params)."""
        self.assertRaises(InvalidCursor, self.codec.decode, "forged", "s", "tools/list")

    def test_cursor_must_be_a_string(self) -> None:
        self.assertRaises(InvalidCursor, self.codec.decode, 5, "s", "tools/list")

    def test_cursor_of_another_session_is_invalid(self) -> None:
        cursor = self.codec.encode({"a": "1"}, "session-1", "tools/list")
        self.assertRaises(InvalidCursor, self.codec.decode, cursor, "session-2", "tools/list")

    def test_cursor_of_another_list_is_invalid(self) -> None:
        cursor = self.codec.encode({"a": "1"}, "s", "tools/list")
        self.assertRaises(InvalidCursor, self.codec.decode, cursor, "s", "prompts/list")

    def test_tampered_cursor_is_invalid(self) -> None:
        cursor = self.codec.encode({"a": "1"}, "s", "tools/list")
        tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BA")
        self.assertRaises(InvalidCursor, self.codec.decode, tampered, "s", "tools/list")

    def test_token_of_another_purpose_is_invalid(self) -> None:
        token = Sealer(SECRET).for_purpose("session").seal({"p": []})
        self.assertRaises(InvalidCursor, self.codec.decode, token, "s", "tools/list")

    @given(
        st.dictionaries(st.text(min_size=1, max_size=10), st.none() | st.text(max_size=50)),
        st.text(max_size=40),
    )
    def test_any_state_round_trips(self, pending: dict[str, str | None], binding: str) -> None:
        cursor = self.codec.encode(pending, binding, "resources/list")
        self.assertEqual(self.codec.decode(cursor, binding, "resources/list"), pending)
