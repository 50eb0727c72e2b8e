"""A 2026-07-28 result as a 2025-11-25 client reads it (``protocol/revision.py``)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.protocol.revision import MODERN_RESULT_FIELDS, legacy_result


class LegacyResultTests(SynchronousTestCase):
    def test_the_2026_fields_are_dropped_from_a_copy(self) -> None:
        """expected: the copy has only the 2025-11-25 fields; the backend's dict is left
        as it came."""
        result = {"content": [], "resultType": "complete", "ttlMs": 5, "cacheScope": "user"}
        legacy = legacy_result(result)
        self.assertEqual(legacy, {"content": []})
        self.assertEqual(set(result) & set(MODERN_RESULT_FIELDS), set(MODERN_RESULT_FIELDS))

    def test_a_result_without_them_is_passed_on_as_it_is(self) -> None:
        """expected: the same dict, not a copy (nothing to drop, nothing copied per call)."""
        result = {"content": [{"type": "text", "text": "hi"}], "isError": False}
        self.assertIs(legacy_result(result), result)
