"""The merged event id of a session's GET stream, sealed and bound to the session (MCP
2025-11-25 basic/transports "Resumability and Redelivery").

It goes out on every event and comes back as the client's ``Last-Event-ID``: bounded by
``MAX_EVENT_ID_BYTES`` and visible ASCII whatever the backends' ids, and opened only for
the session it was written on; anything else is ``InvalidEventId`` (every backend
resumes from nowhere).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aigw.sealed.event_id import MAX_EVENT_ID_BYTES, EventIdCodec, InvalidEventId
from aigw.sealed.sealer import Sealer

SECRET = b"e" * 32
OLD_SECRET = b"o" * 32
BINDING = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
#: What an SSE ``id`` line may hold and the sealer writes (RFC 4648 §5, no padding).
TOKEN = re.compile(r"[A-Za-z0-9_-]+")
#: What a backend may put in an SSE id (any text without NUL, CR, LF: the parser
#: splits lines there and ignores an id with NUL, WHATWG HTML §9.2.6).
SSE_IDS = st.text(
    alphabet=st.characters(blacklist_characters="\0\r\n", blacklist_categories=("Cs",)),
    max_size=40,
) | st.integers(0, 3000).map(lambda n: "\u00e9" * n)  # six bytes each in escaped JSON


def unsealed(value: Any) -> str:
    """A ``Last-Event-ID`` as aigw wrote it before ids were sealed: base64url JSON."""
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class EventIdTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.codec = EventIdCodec(Sealer(SECRET))

    def refused(self, value: object, binding: str = BINDING) -> None:
        self.assertRaises(InvalidEventId, self.codec.decode, value, binding, {"alpha", "beta"})

    def test_round_trip(self) -> None:
        ids = {"alpha": "ev-7", "beta": "42"}
        merged = self.codec.encode(ids, BINDING)
        self.assertEqual(self.codec.decode(merged, BINDING, {"alpha", "beta"}), ids)

    def test_no_id_resumes_nothing_and_is_no_refusal(self) -> None:
        for value in (None, ""):
            self.assertEqual(self.codec.decode(value, BINDING, {"alpha"}), {})

    def test_a_backend_no_longer_there_is_left_out(self) -> None:
        """A reload removed ``gone``: the others resume where they were."""
        merged = self.codec.encode({"alpha": "ev-7", "gone": "ev-1"}, BINDING)
        self.assertEqual(self.codec.decode(merged, BINDING, {"alpha"}), {"alpha": "ev-7"})

    def test_the_backends_ids_do_not_show_through(self) -> None:
        merged = self.codec.encode({"alpha": "secret-event-42"}, BINDING)
        self.assertNotIn("secret", merged)
        self.assertNotIn(unsealed({"alpha": "secret-event-42"}), merged)

    def test_each_id_written_is_new(self) -> None:
        """ "globally unique across all streams within that session": the same backends'
        ids written twice (aigw's own message, a resumed stream's priming) differ."""
        ids = {"alpha": "ev-7"}
        first, second = (self.codec.encode(ids, BINDING) for _ in range(2))
        self.assertNotEqual(first, second)
        self.assertEqual(self.codec.decode(second, BINDING, {"alpha"}), ids)

    def test_another_sessions_id_is_refused(self) -> None:
        """The id is bound to the session (associated data): a client that sends another
        session's real id (another user's) gets no backend resumed from it."""
        self.refused(self.codec.encode({"alpha": "ev-7"}, OTHER))

    def test_a_forged_or_old_format_id_is_refused(self) -> None:
        """What aigw wrote before ids were sealed, and any forgery in that format."""
        for value in (
            unsealed({"alpha": "ev-7"}),
            unsealed({}),
            unsealed(b"[" * 3000),
            "not base64 !",
            "\xe9t\xe9",
            "W10",
        ):
            self.refused(value)

    def test_a_tampered_id_is_refused(self) -> None:
        merged = self.codec.encode({"alpha": "ev-7"}, BINDING)
        for at in (0, 1, 5, len(merged) // 2, len(merged) - 2):
            flipped = "A" if merged[at] != "A" else "B"
            self.refused(merged[:at] + flipped + merged[at + 1 :])
        self.refused(merged[:-1])
        self.refused(merged + "A")

    def test_too_long_is_refused_before_any_work(self) -> None:
        self.refused("A" * (MAX_EVENT_ID_BYTES + 1))

    def test_a_token_of_another_purpose_is_refused(self) -> None:
        """A sealed token of aigw's for another use (a cursor, a session id)."""
        sealer = Sealer(SECRET)
        for purpose in ("cursor", "session", "request-id"):
            self.refused(sealer.for_purpose(purpose).seal({"alpha": "ev-7"}, BINDING.encode()))

    def test_not_a_string_is_refused(self) -> None:
        self.refused(7)

    def test_what_cannot_be_a_backends_id_never_rides(self) -> None:
        """WHATWG HTML §9.2.6: an SSE id never holds NUL, CR or LF, and each would go on
        the wire to the backend in ``Last-Event-ID``; nor longer than 511 characters."""
        ids = {"a": "ev\0", "b": "ev\r\n", "c": "ev\nLast-Event-ID: x", "d": "x" * 600}
        merged = self.codec.encode({**ids, "alpha": "ev-1"}, BINDING)
        self.assertEqual(self.codec.decode(merged, BINDING, {*ids, "alpha"}), {"alpha": "ev-1"})

    def test_an_id_sealed_under_an_old_secret_still_opens(self) -> None:
        """Key rotation (``sessions.old_secrets``): a client's stream resumes across it."""
        before = EventIdCodec(Sealer(OLD_SECRET)).encode({"alpha": "ev-7"}, BINDING)
        rotated = EventIdCodec(Sealer(SECRET, [OLD_SECRET]))
        self.assertEqual(rotated.decode(before, BINDING, {"alpha"}), {"alpha": "ev-7"})
        self.refused(before)  # a process that no longer has the old secret

    def test_short_ids_all_survive(self) -> None:
        ids = {f"backend-{n}": f"ev-{n}" * 10 for n in range(8)}
        self.assertEqual(self.codec.decode(self.codec.encode(ids, BINDING), BINDING, ids), ids)

    def test_one_huge_id_leaves_the_others(self) -> None:
        ids = {"alpha": "a" * 1_000_000, "beta": "ev-7"}
        merged = self.codec.encode(ids, BINDING)
        self.assertLessEqual(len(merged), MAX_EVENT_ID_BYTES)
        self.assertEqual(self.codec.decode(merged, BINDING, set(ids)), {"beta": "ev-7"})

    def test_the_bound_is_used_not_wasted(self) -> None:
        """Seven ids of 511 characters fill the bound with the sealing's overhead: the
        trimming drops what must go, not more."""
        ids = {f"b{n}": f"{n}" * 511 for n in range(7)}
        merged = self.codec.encode(ids, BINDING)
        self.assertLessEqual(len(merged), MAX_EVENT_ID_BYTES)
        self.assertEqual(len(self.codec.decode(merged, BINDING, set(ids))), 5)

    @given(st.dictionaries(st.text(min_size=1, max_size=20), SSE_IDS, max_size=12))
    def test_any_backends_ids_give_a_bounded_ascii_id_read_back_as_a_subset(
        self, ids: dict[str, str]
    ) -> None:
        merged = self.codec.encode(ids, BINDING)
        self.assertLessEqual(len(merged), MAX_EVENT_ID_BYTES)
        self.assertTrue(merged.isascii() and TOKEN.fullmatch(merged))
        back = self.codec.decode(merged, BINDING, set(ids))
        self.assertLessEqual(back.items(), ids.items())

    @given(st.text(max_size=200))
    def test_any_text_but_none_is_refused_never_another_exception(self, value: str) -> None:
        if value:
            self.refused(value)
        else:
            self.assertEqual(self.codec.decode(value, BINDING, {"alpha"}), {})
