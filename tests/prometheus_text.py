"""The one reader of a Prometheus scrape for the tests: the unit tests' (the gateway on
the memory network) and the end-to-end tests' (the real daemon).  It parses with
``prometheus_client``'s own parser, the counterpart of the exposition aigw serves, so
a sample the tests find is one a Prometheus server would read the same way."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

#: Samples by name and label set.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(frozen=True)
class Scrape:
    """What one ``GET /metrics`` answered: samples by name and label set."""

    content_type: str
    text: str
    samples: Samples

    @classmethod
    def parse(cls, content_type: str, text: str) -> Scrape:
        """Every sample of ``text`` (the Prometheus text format)."""
        samples = {
            (sample.name, frozenset(sample.labels.items())): float(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return cls(content_type, text, samples)

    def value(self, name: str, **labels: str) -> float | None:
        """``name`` with exactly these labels; None when the scrape has no such sample."""
        return self.samples.get((name, frozenset(labels.items())))
