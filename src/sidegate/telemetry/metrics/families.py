"""The storage behind sidegate's per-request metrics: one family per metric name, one child per
label-value tuple, read by the Prometheus exposition at scrape time.

A child is a plain list that the event loop updates in place (no locks: only the loop writes).
A counter child is `[value]`; a histogram child is `[count per bucket..., count above the last
bound, sum]`. The exposition may run in a worker thread: it copies the children (`list(...)` and
`list.copy()` are single steps under the GIL) and builds cumulative buckets from that copy, so the
`+Inf` bucket always equals `_count`. Children never observed are left out of the exposition.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import ClassVar

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from sidegate.telemetry.metrics.labels import LABEL_VALUE_CAP, LabelCap

Child = list[float]
OverflowKey = tuple[str, str]  # (metric, label)


class Overflow:
    """`sidegate_metric_label_overflow_total{metric, label}`: observations whose value for that
    label was recorded as `__other__` because the label had reached its cap (for the per-request
    metrics: once per request, however many series of the metric it updates)."""

    name = "sidegate_metric_label_overflow_total"

    def __init__(self) -> None:
        self.counts: dict[OverflowKey, int] = {}

    def add(self, keys: Sequence[OverflowKey]) -> None:
        counts = self.counts
        for key in keys:
            counts[key] = counts.get(key, 0) + 1

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            self.name, "Observations whose label value was recorded as __other__: the label had reached "
            "its cap of distinct values.", labels=("metric", "label"))
        for (metric, label), count in list(self.counts.items()):
            family.add_metric((metric, label), count)
        yield family


class Family:
    """One metric with fixed label names; values past each label's cap fold into `__other__`."""

    kind: ClassVar[str]

    def __init__(self, name: str, documentation: str, labels: Sequence[str], overflow: Overflow,
                 cap: int = LABEL_VALUE_CAP) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.children: dict[tuple[str, ...], Child] = {}
        self._cap = LabelCap(self.labels, cap)
        self._overflow = overflow

    def lookup(self, values: tuple[str, ...]) -> tuple[Child, list[OverflowKey]]:
        """The child for these label values, and the (metric, label) pairs that were folded (for
        the caller to count)."""
        child = self.children.get(values)
        if child is not None:
            return child, []
        capped, folded_labels = self._cap.apply(values)
        child = self.children.get(capped)
        if child is None:
            child = self.children[capped] = self.new_child()
        return child, [(self.name, label) for label in folded_labels]

    def child(self, values: tuple[str, ...]) -> Child:
        """The child for one observation; a folded value is counted in the overflow counter."""
        child, folded = self.lookup(values)
        if folded:
            self._overflow.add(folded)
        return child

    def new_child(self) -> Child:
        raise NotImplementedError

    def collect(self) -> Metric:
        raise NotImplementedError


class CounterFamily(Family):
    kind = "counter"

    def new_child(self) -> Child:
        return [0.0]

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, child in list(self.children.items()):
            if child[0]:
                family.add_metric(values, child[0])
        return family


class HistogramFamily(Family):
    kind = "histogram"

    def __init__(self, name: str, documentation: str, labels: Sequence[str], overflow: Overflow,
                 bounds: Sequence[float], cap: int = LABEL_VALUE_CAP) -> None:
        super().__init__(name, documentation, labels, overflow, cap)
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: bucket bounds must be strictly increasing")
        self.bounds = tuple(float(b) for b in bounds)
        self.les = (*(floatToGoString(b) for b in self.bounds), "+Inf")

    def new_child(self) -> Child:
        return [0.0] * (len(self.bounds) + 2)

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        les = self.les
        for values, child in list(self.children.items()):
            data = child.copy()
            total = 0.0
            buckets: list[tuple[str, float]] = []
            for le, count in zip(les, data, strict=False):  # data ends with the sum, which les skips
                total += count
                buckets.append((le, total))
            if total:
                family.add_metric(values, buckets, data[-1])
        return family


def observe(child: Child, bounds: tuple[float, ...], value: float) -> None:
    """Record one value in a histogram child."""
    child[bisect_left(bounds, value)] += 1
    child[-1] += value
