"""Prometheus metrics on a registry the app owns (never the global one), served at ``/metrics``.

Request-path numbers (counts, latencies, queue waits, batch sizes) are recorded as they happen;
state (resident models and bytes, queue depths, cache counters, RSS) is read from the cache and
schedulers when Prometheus scrapes, so keeping it costs the request path nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelhost.cache.entry import ModelState

if TYPE_CHECKING:
    from modelhost.services import Services

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Every metric modelhost exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version", "endpoint", "status")
        self.requests = Counter(
            "modelhost_requests_total",
            "Inference requests answered.",
            labels,
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "modelhost_request_duration_seconds",
            "Time from a request's arrival to its answer.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "modelhost_queue_wait_seconds",
            "Time a request waited in its model's queue before its batch ran.",
            ("model", "version"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "modelhost_batch_size",
            "Requests run together in one model call.",
            ("model", "version"),
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.load_duration = Histogram(
            "modelhost_model_load_seconds",
            "Time a model load spent in each phase (download, verify, deserialize, warmup, total).",
            ("model", "version", "phase"),
            buckets=LOAD_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes and friends
        self._series: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}

    def request_series(
        self, model: str, version: str, endpoint: str, status: int
    ) -> tuple[Counter, Histogram]:
        """The request counter and latency histogram of one label set.

        prometheus_client's ``labels()`` validates and takes a lock on every call; label sets
        repeat, so each is looked up once.
        """
        key = (model, version, endpoint, status)
        found = self._series.get(key)
        if found is None:
            labels = (model, version, endpoint, str(status))
            found = self._series[key] = (
                self.requests.labels(*labels),
                self.request_duration.labels(*labels),
            )
        return found

    def watch(self, services: Services) -> None:
        """Export the server's state, read at scrape time."""
        self.registry.register(_StateCollector(lambda: services))


class _StateCollector(Collector):
    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        services = self._services()
        cache = services.cache
        stats = cache.stats
        for name, value, doc in (
            ("modelhost_cache_hits", stats.hits, "Requests that found their model resident."),
            ("modelhost_cache_misses", stats.misses, "Requests that had to wait for a load."),
            ("modelhost_model_loads", stats.loads, "Model loads that succeeded."),
            ("modelhost_model_load_failures", stats.load_failures, "Model loads that failed."),
            ("modelhost_cache_evictions", stats.evictions, "Models evicted to make room."),
            ("modelhost_model_unloads", stats.unloads, "Models unloaded (evicted, idle, asked)."),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "modelhost_memory_budget_bytes", "Memory resident models may use.", value=cache.budget
        )
        yield GaugeMetricFamily(
            "modelhost_resident_bytes",
            "Memory charged to resident models (measured footprints).",
            value=cache.used_bytes + cache.freeing_bytes,
        )
        yield GaugeMetricFamily(
            "modelhost_reserved_bytes",
            "Memory held for loads under way.",
            value=cache.reserved_bytes,
        )
        states = GaugeMetricFamily(
            "modelhost_model_state",
            "1 for each model version's current state.",
            labels=("model", "version", "state"),
        )
        footprint = GaugeMetricFamily(
            "modelhost_model_memory_bytes",
            "Memory charged to each resident model version.",
            labels=("model", "version"),
        )
        resident = 0
        for entry in cache.entries():
            version = str(entry.version)
            states.add_metric((entry.name, version, entry.state.value), 1)
            if entry.footprint:
                footprint.add_metric((entry.name, version), entry.footprint)
                resident += 1
        yield states
        yield footprint
        yield GaugeMetricFamily(
            "modelhost_resident_models", "Model versions in memory.", value=resident
        )
        # A loading model's leases are the requests waiting for it: demand the replica cannot
        # serve yet (the autoscaler's signal, with the queues).
        yield GaugeMetricFamily(
            "modelhost_requests_waiting_for_load",
            "Requests waiting for their model to finish loading.",
            value=sum(e.leases for e in cache.entries() if e.state is ModelState.LOADING),
        )
        depth = GaugeMetricFamily(
            "modelhost_queue_depth",
            "Requests waiting in each model's queue.",
            labels=("model", "version"),
        )
        capacity = GaugeMetricFamily(
            "modelhost_queue_capacity",
            "Each model's max_queue_size.",
            labels=("model", "version"),
        )
        for model, scheduler in services.inference.schedulers():
            labels = (model.ref.name, str(model.ref.version))
            depth.add_metric(labels, scheduler.queue_depth)
            capacity.add_metric(labels, model.manifest.max_queue_size)
        yield depth
        yield capacity
        yield GaugeMetricFamily(
            "modelhost_requests_in_flight",
            "Requests being served now (all endpoints but probes and metrics).",
            value=services.in_flight,
        )
        artifacts = services.store.artifact_cache
        if artifacts is not None:
            counters = artifacts.stats
            for name, value, doc in (
                ("hits", counters.hits, "Model files found in the local artifact cache."),
                ("downloads", counters.downloads, "Model files fetched from the store."),
                ("downloaded_bytes", counters.downloaded_bytes, "Bytes fetched from the store."),
                ("mismatches", counters.mismatches, "Fetched files whose sha256 was wrong."),
                ("evictions", counters.evictions, "Files evicted from the artifact cache."),
            ):
                yield CounterMetricFamily(f"modelhost_artifact_cache_{name}", doc, value=value)
            yield GaugeMetricFamily(
                "modelhost_artifact_cache_bytes",
                "Bytes the local artifact cache holds.",
                value=artifacts.used_bytes,
            )
        writer = services.usage_writer
        yield GaugeMetricFamily(
            "modelhost_usage_records_pending",
            "Usage records waiting in memory to be written.",
            value=writer.pending,
        )
        yield CounterMetricFamily(
            "modelhost_usage_records_journaled",
            "Usage records spilled to the journal while the database was away.",
            value=writer.journaled,
        )
