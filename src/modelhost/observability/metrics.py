"""Prometheus metrics on a registry the app owns (never the global one), served at ``/metrics``.

Request-path numbers (counts, latencies, queue waits, batch sizes) are recorded as they happen;
state (resident models and bytes, queue depths, cache counters, RSS) is read when Prometheus
scrapes, from the snapshots the components expose (:mod:`observability.state_metrics` turns
them into metric families; the wiring registers them with :meth:`Metrics.watch`), so keeping it
costs the request path nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from modelhost.observability.loop_metrics import (
    CounterChild,
    HistogramChild,
    LoopCounter,
    LoopHistogram,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Every metric modelhost exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version", "endpoint", "status")
        # The request path's own metrics update without a lock (see loop_metrics).
        self.requests = LoopCounter(
            "modelhost_requests",
            "Inference requests answered.",
            labels,
            registry=self.registry,
        )
        self.request_duration = LoopHistogram(
            "modelhost_request_duration_seconds",
            "Time from a request's arrival to its answer.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = LoopHistogram(
            "modelhost_queue_wait_seconds",
            "Time a request waited in its model's queue before its batch ran.",
            ("model", "version"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = LoopHistogram(
            "modelhost_batch_size",
            "Requests run together in one model call.",
            ("model", "version"),
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.load_duration = Histogram(
            "modelhost_model_load_seconds",
            "Time a model load spent in each phase (download, verify, deserialize, measure, "
            "total), by where it read the files from (remote: the store; disk: local files).",
            ("model", "version", "phase", "source"),
            buckets=LOAD_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes and friends
        self._series: dict[tuple[str, str, str, int], tuple[CounterChild, HistogramChild]] = {}

    def request_series(
        self, model: str, version: str, endpoint: str, status: int
    ) -> tuple[CounterChild, HistogramChild]:
        """The request counter and latency histogram of one label set (looked up once each:
        the status arrives as an int, the labels want text)."""
        key = (model, version, endpoint, status)
        found = self._series.get(key)
        if found is None:
            labels = (model, version, endpoint, str(status))
            found = self._series[key] = (
                self.requests.labels(*labels),
                self.request_duration.labels(*labels),
            )
        return found

    def watch(self, families: Callable[[], Iterable[Metric]]) -> None:
        """Export what ``families`` yields, called at each scrape (state read when asked)."""
        self.registry.register(_ScrapeTime(families))


class _ScrapeTime(Collector):
    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families()
