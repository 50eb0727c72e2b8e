"""aigw.lru: the one bounded memo every client-keyed cache uses."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.lru import LRU


class LRUTests(SynchronousTestCase):
    def test_least_recently_used_goes_first(self) -> None:
        memo: LRU[str, int] = LRU(2)
        memo.put("a", 1)
        memo.put("b", 2)
        self.assertEqual(memo.get("a"), 1)  # "a" is now the newest
        memo.put("c", 3)
        self.assertEqual(memo.keys(), ["a", "c"])
        self.assertIsNone(memo.get("b"))

    def test_put_again_refreshes(self) -> None:
        memo: LRU[str, int] = LRU(2)
        memo.put("a", 1)
        memo.put("b", 2)
        memo.put("a", 3)
        memo.put("c", 4)
        self.assertEqual(memo.keys(), ["a", "c"])
        self.assertEqual(memo.get("a"), 3)

    def test_zero_keeps_nothing(self) -> None:
        memo: LRU[str, int] = LRU(0)
        memo.put("a", 1)
        self.assertEqual(len(memo), 0)

    def test_pop_and_clear(self) -> None:
        memo: LRU[str, int] = LRU(3)
        memo.put("a", 1)
        self.assertEqual(memo.pop("a"), 1)
        self.assertIsNone(memo.pop("a"))
        memo.put("b", 2)
        memo.clear()
        self.assertEqual(len(memo), 0)
