"""tests/prometheus_text.py reads what aigw's metrics listener serves: every sample of
a family (a histogram's buckets, sum and count), by exact label set."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.trial.unittest import SynchronousTestCase

from tests.prometheus_text import Scrape


class ScrapeTests(SynchronousTestCase):
    def test_samples_by_name_and_exact_labels(self) -> None:
        registry = CollectorRegistry()
        counter = Counter("x", "help", ["backend", "outcome"], registry=registry)
        counter.labels("alpha", "ok").inc(3)
        counter.labels("beta", "error").inc()
        Histogram("d", "help", buckets=(1.0,), registry=registry).observe(0.5)
        text = generate_latest(registry).decode()
        scrape = Scrape.parse(CONTENT_TYPE_LATEST, text)
        self.assertEqual(scrape.value("x_total", backend="alpha", outcome="ok"), 3.0)
        self.assertEqual(scrape.value("x_total", backend="beta", outcome="error"), 1.0)
        self.assertIsNone(scrape.value("x_total", backend="alpha"))  # labels match exactly
        self.assertEqual(scrape.value("d_bucket", le="1.0"), 1.0)
        self.assertEqual(scrape.value("d_count"), 1.0)
        self.assertEqual((scrape.content_type, scrape.text), (CONTENT_TYPE_LATEST, text))
