"""Metric families of the server's state, built from what each component exposes, at scrape
time. Each function takes the one thing it reports on; the wiring (:mod:`modelhost.services`)
registers them with :meth:`Metrics.watch <modelhost.observability.metrics.Metrics.watch>`.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from modelhost.cache.entry import ModelState
from modelhost.cache.snapshot import CacheSnapshot
from modelhost.db.usage_writer import UsageWriter
from modelhost.inference.service import QueueSnapshot
from modelhost.storage.artifact_cache import ArtifactCache


def cache_families(cache: CacheSnapshot) -> Iterator[Metric]:
    """The model cache: its counters, the memory budget and what holds it, each version."""
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
        "modelhost_memory_budget_bytes", "Memory resident models may use.", value=cache.budget_bytes
    )
    yield GaugeMetricFamily(
        "modelhost_resident_bytes",
        "Memory charged to resident models (measured footprints).",
        value=cache.resident_bytes,
    )
    yield GaugeMetricFamily(
        "modelhost_reserved_bytes", "Memory held for loads under way.", value=cache.reserved_bytes
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
    for model in cache.models:
        version = str(model.version)
        states.add_metric((model.name, version, model.state.value), 1)
        if model.footprint_bytes:
            footprint.add_metric((model.name, version), model.footprint_bytes)
            resident += 1
    yield states
    yield footprint
    yield from churn_families(cache)
    yield GaugeMetricFamily(
        "modelhost_resident_models", "Model versions in memory.", value=resident
    )
    # A loading model's leases are the requests waiting for it: demand the replica cannot
    # serve yet (the autoscaler's signal, with the queues).
    yield GaugeMetricFamily(
        "modelhost_requests_waiting_for_load",
        "Requests waiting for their model to finish loading.",
        value=sum(model.leases for model in cache.models if model.state is ModelState.LOADING),
    )


# Scaling by model, not just by pod (docs/routing.md): per model version, what it cost this
# replica to hold it, or not to.
_CHURN = (
    ("loads", "modelhost_model_version_loads", "Loads of each model version here."),
    ("evictions", "modelhost_model_version_evictions", "Evictions of each model version here."),
    (
        "load_waits",
        "modelhost_model_load_waits",
        "Requests that found their model not resident here and waited for it to load.",
    ),
    (
        "load_wait_seconds",
        "modelhost_model_load_wait_seconds",
        "Seconds requests spent waiting for their model to load here, together.",
    ),
    (
        "did_not_fit",
        "modelhost_model_did_not_fit",
        "Requests refused because the memory budget here could not hold their model.",
    ),
)


def churn_families(cache: CacheSnapshot) -> Iterator[Metric]:
    """Per model version: loads, evictions, requests that waited on a load (count, seconds),
    requests refused for lack of room."""
    families = [
        (field, CounterMetricFamily(name, doc, labels=("model", "version")))
        for field, name, doc in _CHURN
    ]
    for model in cache.models:
        labels = (model.name, str(model.version))
        for field, family in families:
            family.add_metric(labels, getattr(model.counters, field))
    for _, family in families:
        yield family


def queue_families(queues: list[QueueSnapshot]) -> Iterator[Metric]:
    """Each loaded model version's queue."""
    depth = GaugeMetricFamily(
        "modelhost_queue_depth",
        "Requests waiting in each model's queue.",
        labels=("model", "version"),
    )
    capacity = GaugeMetricFamily(
        "modelhost_queue_capacity", "Each model's max_queue_size.", labels=("model", "version")
    )
    for queue in queues:
        labels = (queue.name, str(queue.version))
        depth.add_metric(labels, queue.depth)
        capacity.add_metric(labels, queue.capacity)
    yield depth
    yield capacity


def in_flight_families(in_flight: int) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "modelhost_requests_in_flight",
        "Requests being served now (all endpoints but probes and metrics).",
        value=in_flight,
    )


def artifact_cache_families(artifacts: ArtifactCache) -> Iterator[Metric]:
    """The verified local copy of a remote store's files."""
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


def usage_writer_families(writer: UsageWriter) -> Iterator[Metric]:
    """Usage records on their way to the database."""
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
