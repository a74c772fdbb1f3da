"""Per-model traffic and load figures as JSON, for the console's Operations page.

Everything here is read from what the server already keeps (the Prometheus metrics, the
schedulers' counters, the cache's entries) when asked: no second bookkeeping on the request path.
Counters and histograms are cumulative, like Prometheus's: a reader takes two snapshots and
divides their difference by the time between them to get rates and windowed quantiles.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.registry import Collector

from modelhost.cache.model_cache import ModelCache
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.inference.service import QueueSnapshot
from modelhost.observability.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, LOAD_BUCKETS, Metrics

Key = tuple[str, str]  # (model, version) as the metrics label them


@dataclass
class _Histogram:
    """One histogram's buckets summed over the label sets that share a (model, version)."""

    bounds: tuple[float, ...]
    counts: list[float] = field(default_factory=list)  # cumulative, one per bound, then +Inf
    sum: float = 0.0

    def __post_init__(self) -> None:
        self.bounds = tuple(float(b) for b in self.bounds)
        self.counts = [0.0] * (len(self.bounds) + 1)

    def add(self, bound: float, count: float) -> None:
        index = len(self.bounds) if math.isinf(bound) else self.bounds.index(bound)
        self.counts[index] += count

    @property
    def count(self) -> float:
        return self.counts[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "bounds": list(self.bounds),
            "counts": [int(c) for c in self.counts],
            "count": int(self.count),
            "sum": self.sum,
        }


def _samples(metric: Collector) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in metric.collect() for s in family.samples]


def _histograms(metric: Collector, bounds: tuple[float, ...], **only: str) -> dict[Key, _Histogram]:
    found: dict[Key, _Histogram] = {}
    for name, labels, value in _samples(metric):
        if any(labels.get(k) != v for k, v in only.items()):
            continue
        key = (labels["model"], labels["version"])
        if key not in found:
            found[key] = _Histogram(bounds)
        histogram = found[key]
        if name.endswith("_bucket"):
            histogram.add(float(labels["le"]), value)
        elif name.endswith("_sum"):
            histogram.sum += value
    return found


def _order(key: Key) -> tuple[str, int]:
    return key[0], int(key[1]) if key[1].isdigit() else 0


def model_stats(
    metrics: Metrics,
    catalog: ModelCatalog,
    cache: ModelCache,
    queues: list[QueueSnapshot],
) -> dict[str, Any]:
    """Every model version the server knows or served: state, memory, traffic, queue, batches,
    loads."""
    requests: dict[Key, dict[str, int]] = defaultdict(dict)
    for name, labels, value in _samples(metrics.requests):
        if name.endswith("_total"):
            statuses = requests[(labels["model"], labels["version"])]
            statuses[labels["status"]] = statuses.get(labels["status"], 0) + int(value)
    latency = _histograms(metrics.request_duration, LATENCY_BUCKETS)
    batches = _histograms(metrics.batch_size, BATCH_BUCKETS)
    loads = _histograms(metrics.load_duration, LOAD_BUCKETS, phase="total")
    by_model = {(queue.name, str(queue.version)): queue for queue in queues}
    entries = {(e.name, str(e.version)): e for e in cache.entries()}
    known = {
        (name, str(record.version))
        for name in catalog.names()
        for record in catalog.versions(name)
        if record.manifest is not None
    }

    models = []
    for key in sorted(known | set(entries) | set(requests) | set(loads), key=_order):
        if not key[1].isdigit():
            continue  # requests for names that resolved to no model
        entry = entries.get(key)
        queued = by_model.get(key)
        resident = entry.model if entry is not None else None
        idle = cache.seconds_since_use(entry) if entry is not None else None
        state, reason = cache.status(key[0], int(key[1]))
        models.append(
            {
                "name": key[0],
                "version": key[1],
                "state": state.value,
                "reason": reason,
                "footprint_bytes": entry.footprint if entry is not None else 0,
                "leases": entry.leases if entry is not None else 0,
                "idle_seconds": idle,
                "requests": requests.get(key, {}),
                "latency_seconds": (latency.get(key) or _Histogram(LATENCY_BUCKETS)).to_json(),
                "batch_size": (batches.get(key) or _Histogram(BATCH_BUCKETS)).to_json(),
                "queue": None
                if queued is None
                else {
                    "depth": queued.depth,
                    "capacity": queued.capacity,
                    "batches": queued.batches,
                    "rejected": queued.rejected,
                    "expired": queued.expired,
                },
                "loads": (loads.get(key) or _Histogram(LOAD_BUCKETS)).to_json(),
                "last_load": None
                if resident is None
                else {"seconds": resident.load_seconds, "phases": resident.phases},
            }
        )
    return {"time": time.time(), "models": models}
