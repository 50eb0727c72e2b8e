"""metrics.lockfree: the series prometheus_client's own metrics would show, without locks."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from twisted.trial.unittest import SynchronousTestCase

from aigw.metrics.lockfree import LockFreeCounter, LockFreeHistogram

BUCKETS = (0.001, 0.01, 0.1, 1.0)
VALUES = (0.0, 0.0005, 0.001, 0.002, 0.01, 0.5, 1.0, 3.0, -1.0)


def samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample but ``_created`` (the lock-free metrics have none)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


class SameSeriesTests(SynchronousTestCase):
    def test_histogram(self) -> None:
        ours, theirs = CollectorRegistry(), CollectorRegistry()
        mine = LockFreeHistogram("t_seconds", "T.", ("backend",), buckets=BUCKETS, registry=ours)
        reference = Histogram("t_seconds", "T.", ("backend",), buckets=BUCKETS, registry=theirs)
        for backend in ("a", "b"):
            for value in VALUES:
                mine.labels(backend).observe(value)
                reference.labels(backend).observe(value)
        self.assertEqual(samples(ours), samples(theirs))
        self.assertEqual(
            ours.get_sample_value("t_seconds_bucket", {"backend": "a", "le": "0.001"}), 4.0
        )

    def test_unlabelled_histogram_exists_at_zero(self) -> None:
        ours, theirs = CollectorRegistry(), CollectorRegistry()
        LockFreeHistogram("t_seconds", "T.", buckets=BUCKETS, registry=ours)
        Histogram("t_seconds", "T.", buckets=BUCKETS, registry=theirs)
        self.assertEqual(samples(ours), samples(theirs))

    def test_counter(self) -> None:
        ours, theirs = CollectorRegistry(), CollectorRegistry()
        mine = LockFreeCounter("t_total", "T.", ("outcome",), registry=ours)
        reference = Counter("t_total", "T.", ("outcome",), registry=theirs)
        for outcome in ("ok", "ok", "error"):
            mine.labels(outcome).inc()
            reference.labels(outcome).inc()
        mine.labels("never")
        reference.labels("never")
        self.assertEqual(samples(ours), samples(theirs))
        self.assertEqual(ours.get_sample_value("t_total", {"outcome": "ok"}), 2.0)

    def test_unlabelled_counter(self) -> None:
        registry = CollectorRegistry()
        LockFreeCounter("t_total", "T.", registry=registry).labels().inc()
        self.assertEqual(registry.get_sample_value("t_total"), 1.0)


class MisuseTests(SynchronousTestCase):
    def test_buckets_must_be_finite_and_increasing(self) -> None:
        for buckets in ((), (1.0, 0.5), (0.5, 0.5), (0.5, float("inf"))):
            with self.assertRaises(ValueError):
                LockFreeHistogram("t", "T.", buckets=buckets, registry=CollectorRegistry())

    def test_labels_must_match_the_names(self) -> None:
        counter = LockFreeCounter("t_total", "T.", ("a", "b"), registry=CollectorRegistry())
        with self.assertRaises(ValueError):
            counter.labels("only-one")

    def test_a_name_is_registered_once(self) -> None:
        registry = CollectorRegistry()
        LockFreeCounter("t_total", "T.", registry=registry)
        with self.assertRaises(ValueError):
            LockFreeCounter("t_total", "T.", registry=registry)
        with self.assertRaises(ValueError):
            Counter("t_total", "T.", registry=registry)
