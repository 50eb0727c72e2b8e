"""aigw.runtime: the daemon's garbage collector settings."""

from __future__ import annotations

import gc

from twisted.trial.unittest import SynchronousTestCase

from aigw.runtime import YOUNG_THRESHOLD, tune_garbage_collector


class GarbageCollectorTests(SynchronousTestCase):
    def setUp(self) -> None:
        threshold = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *threshold)
        self.addCleanup(gc.unfreeze)

    def test_startup_objects_are_frozen_and_young_collections_rarer(self) -> None:
        tune_garbage_collector()
        self.assertGreater(gc.get_freeze_count(), 0)
        self.assertEqual(gc.get_threshold()[0], YOUNG_THRESHOLD)

    def test_cycles_are_still_collected(self) -> None:
        tune_garbage_collector()

        class Node:
            other: object = None

        first, second = Node(), Node()
        first.other, second.other = second, first
        del first, second
        self.assertGreaterEqual(gc.collect(), 2)
