"""Counters and histograms kept as plain numbers, for the hot path.

prometheus_client's metrics take a mutex for each value they touch:
``Counter.inc`` costs about 0.35 µs and ``Histogram.observe`` 0.7 µs (it also
scans the buckets in order).  aigw counts on the reactor thread and is scraped
on it too (``listener`` renders there), so no lock is needed: an increment is
an addition, an observation a bisection and two additions.  The series are
those prometheus_client makes (``_total``; ``_bucket``, ``_count``, ``_sum``),
without ``_created``.  Only for values counted and read on one thread.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


class CounterCell:
    """The value of one labelled counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1


class HistogramCell:
    """The counts of one labelled histogram."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        #: Per bucket, not cumulative; the last one is +Inf.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as Prometheus' ``le`` says.
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


_Cell = TypeVar("_Cell", CounterCell, HistogramCell)
_Exposed = TypeVar("_Exposed", CounterMetricFamily, HistogramMetricFamily)


class _Family(Generic[_Cell, _Exposed]):
    """A metric family registered in ``registry``; ``labels(...)`` gives a cell."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._cells: dict[tuple[str, ...], _Cell] = {}
        if not self._labelnames:
            self.labels()
        registry.register(self)

    def labels(self, *values: str) -> _Cell:
        cell = self._cells.get(values)
        if cell is None:
            if len(values) != len(self._labelnames):
                raise ValueError(f"{self._name}: expected labels {self._labelnames}")
            cell = self._cells[values] = self._new_cell()
        return cell

    def describe(self) -> Iterator[Metric]:
        """The name, for the registry's check of duplicates."""
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, cell in self._cells.items():
            self._add(family, values, cell)
        yield family

    def _new_cell(self) -> _Cell:
        raise NotImplementedError

    def _family(self) -> _Exposed:
        raise NotImplementedError

    def _add(self, family: _Exposed, values: tuple[str, ...], cell: _Cell) -> None:
        raise NotImplementedError


class LockFreeCounter(_Family[CounterCell, CounterMetricFamily]):
    """A counter family; ``name`` ends in ``_total``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        super().__init__(name, documentation, labelnames, registry)

    def _new_cell(self) -> CounterCell:
        return CounterCell()

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def _add(self, family: CounterMetricFamily, values: tuple[str, ...], cell: CounterCell) -> None:
        family.add_metric(values, cell.value)


class LockFreeHistogram(_Family[HistogramCell, HistogramMetricFamily]):
    """A histogram family with the given finite, increasing bucket bounds (+Inf added)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = tuple(float(bound) for bound in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or bounds[-1] == float("inf"):
            raise ValueError(f"{name}: buckets must be finite, increasing, and not empty")
        self._bounds = bounds
        # floatToGoString is untyped: it formats a bound as Prometheus' Go client does.
        self._les = (*(floatToGoString(b) for b in bounds), "+Inf")  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry)

    def _new_cell(self) -> HistogramCell:
        return HistogramCell(self._bounds)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def _add(
        self, family: HistogramMetricFamily, values: tuple[str, ...], cell: HistogramCell
    ) -> None:
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for le, count in zip(self._les, cell.counts, strict=True):
            cumulative += count
            buckets.append((le, cumulative))
        family.add_metric(values, buckets, cell.sum)
