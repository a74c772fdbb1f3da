"""The lock-free request-path metrics scrape exactly as prometheus_client's own types would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelhost.observability.loop_metrics import LoopCounter, LoopHistogram

BOUNDS = (0.001, 0.0025, 0.01, 1, 2.5, 60)
# On a bound (le is inclusive), between bounds, below the first, past the last, and zero.
VALUES = [0.001, 0.0005, 0.002, 0.0025, 0.3, 1.0, 2.5, 61.0, 0.0, 1e9]


def samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_a_histogram_scrapes_as_prometheus_clients_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopHistogram("h_seconds", "help", ("model", "status"), buckets=BOUNDS, registry=ours)
    reference = Histogram("h_seconds", "help", ("model", "status"), buckets=BOUNDS, registry=theirs)
    for position, value in enumerate(VALUES):
        labels = ("a", "200") if position % 3 else ("b", "500")
        mine.labels(*labels).observe(value)
        reference.labels(*labels).observe(value)

    scraped = samples(ours)
    assert scraped == samples(theirs)
    assert ("h_seconds_count", (("model", "a"), ("status", "200")), 6.0) in scraped


def test_a_counter_scrapes_as_prometheus_clients_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LoopCounter("requests", "help", ("status",), registry=ours)
    reference = Counter("requests", "help", ("status",), registry=theirs)
    for status, times in (("200", 5), ("404", 2)):
        for _ in range(times):
            mine.labels(status).inc()
            reference.labels(status).inc()

    scraped = samples(ours)
    assert scraped == samples(theirs)
    assert ("requests_total", (("status", "200"),), 5.0) in scraped


def test_the_wrong_number_of_labels_is_refused() -> None:
    histogram = LoopHistogram("h", "help", ("a", "b"), buckets=BOUNDS, registry=CollectorRegistry())
    with pytest.raises(ValueError, match="takes labels"):
        histogram.labels("only-one")
