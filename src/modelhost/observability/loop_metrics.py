"""Labelled counters and histograms for the request path, updated without a lock.

prometheus_client guards every update with a lock (a counter's ``inc``, each of a histogram's
``observe`` calls twice) and searches a histogram's buckets one by one: about 4 % of a small
batched request's CPU went to the four updates each request makes. Every request-path update
happens on the event loop's thread (REST and gRPC share the loop), so plain numbers do: an
update is an addition and a binary search. A scrape, from any thread, reads a snapshot through
:meth:`collect`; a histogram's count is its buckets' sum, so the two always agree.

The text a scrape writes is what prometheus_client's own types write (names, ``le`` labels,
``_total``, ``_sum`` and ``_count``), without their ``_created`` samples.
"""

from __future__ import annotations

from abc import abstractmethod
from bisect import bisect_left
from collections.abc import Sequence
from typing import Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("_bounds", "buckets", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as Prometheus's ``le`` (less or equal) wants.
        self.buckets[bisect_left(self._bounds, value)] += 1
        self.sum += value


Child = TypeVar("Child", CounterChild, HistogramChild)


class _Labelled(Collector, Generic[Child]):
    """A family of children by label values, registered with ``registry``; registers itself
    once its subclass has set up what :meth:`_new_child` needs."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Child] = {}
        registry.register(self)

    def labels(self, *values: str) -> Child:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = self._new_child()
        return child

    @abstractmethod
    def _new_child(self) -> Child: ...

    def _snapshot(self) -> list[tuple[tuple[str, ...], Child]]:
        return list(self._children.items())  # list(): one step under the GIL, any thread


class LoopCounter(_Labelled[CounterChild]):
    """A counter family (``name`` without ``_total``), children by label values."""

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def collect(self) -> list[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._snapshot():
            family.add_metric(list(values), child.value)
        return [family]


class LoopHistogram(_Labelled[HistogramChild]):
    """A histogram family with fixed ``buckets``, children by label values."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._bounds = tuple(float(bound) for bound in buckets)
        # The ``le`` labels as prometheus_client writes them ("0.005", "1.0", "+Inf").
        self._les = [floatToGoString(b) for b in (*self._bounds, float("inf"))]  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def collect(self) -> list[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._snapshot():
            counts, total = list(child.buckets), child.sum
            cumulative, buckets = 0, []
            for le, count in zip(self._les, counts, strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            family.add_metric(list(values), buckets, total)
        return [family]
