"""aigw.runtime: the daemon's garbage collector settings."""

from __future__ import annotations

import gc
import linecache

import attrs
from twisted.trial.unittest import SynchronousTestCase

from aigw.runtime import ATTRS_SOURCE, YOUNG_THRESHOLD, tune_garbage_collector


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

    def test_attrs_generated_source_is_forgotten_and_its_classes_still_work(self) -> None:
        @attrs.frozen
        class Point:
            x: int

        self.assertTrue(any(name.startswith(ATTRS_SOURCE) for name in linecache.cache))
        tune_garbage_collector()
        self.assertFalse(any(name.startswith(ATTRS_SOURCE) for name in linecache.cache))
        self.assertEqual(Point(1), Point(x=1))
