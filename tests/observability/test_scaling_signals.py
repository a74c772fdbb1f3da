"""Signals for scaling by model, not just by pod (issue 10): per model version, requests that
waited on a load (count and seconds), load/evict churn, and requests refused because the model
did not fit; read from a real server's /metrics after known traffic. And the autoscaler's and
the thrashing alert's queries name only metrics a replica exports."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

from tests.deploy.manifests import OVERLAYS, find, render
from tests.observability.test_metrics import scrape, value
from tests.observability.test_monitoring_files import RULES, metric_names
from tests.support.models import write_memory_model
from tests.support.server import ServerProcess

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
LOAD_SECONDS = 0.3


def test_per_model_load_waits_churn_and_refusals(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "a", 20, load_delay=LOAD_SECONDS)
    write_memory_model(root, "b", 20, load_delay=LOAD_SECONDS)
    write_memory_model(root, "big", 60)  # never fits the budget below
    args = ["--memory-budget", "30MiB"]
    # No MALLOC_* settings: a reload must be measured at its size by itself (it once came out
    # near zero, the process reusing pages it kept, and a and b both "fit"; cache.memory).
    with (
        ServerProcess(root, tmp_path / "server.log", args=args) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):

        def infer(name: str) -> int:
            return http.post(f"/v2/models/{name}/infer", json=X).status_code

        # The budget holds one: a, then b (a evicted), then a (b evicted), then b twice at
        # once (a evicted; both wait on the one load), then b resident (no wait).
        assert infer("a") == 200 and infer("b") == 200 and infer("a") == 200
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(infer, ["b", "b"])) == [200, 200]
        assert infer("b") == 200
        assert infer("big") == 503
        samples = scrape(server.url)

    def metric(name: str, model: str) -> float:
        return value(samples, name, model=model, version="1")

    assert metric("modelhost_model_version_loads_total", "a") == 2
    assert metric("modelhost_model_version_loads_total", "b") == 2
    assert metric("modelhost_model_version_evictions_total", "a") == 2
    assert metric("modelhost_model_version_evictions_total", "b") == 1
    assert metric("modelhost_model_load_waits_total", "a") == 2
    assert metric("modelhost_model_load_waits_total", "b") == 3  # not the request that hit
    assert metric("modelhost_model_load_wait_seconds_total", "a") >= 2 * LOAD_SECONDS
    assert metric("modelhost_model_load_wait_seconds_total", "b") >= 3 * LOAD_SECONDS
    assert metric("modelhost_model_did_not_fit_total", "big") == 1
    assert metric("modelhost_model_version_loads_total", "big") == 0
    assert metric("modelhost_model_did_not_fit_total", "a") == 0
    print(
        "\nper model after a/b/a/b+b/b/big: "
        + ", ".join(
            f"{name}: {metric('modelhost_model_version_loads_total', name):.0f} loads, "
            f"{metric('modelhost_model_version_evictions_total', name):.0f} evictions, "
            f"{metric('modelhost_model_load_waits_total', name):.0f} waits "
            f"({metric('modelhost_model_load_wait_seconds_total', name):.2f} s), "
            f"{metric('modelhost_model_did_not_fit_total', name):.0f} did not fit"
            for name in ("a", "b", "big")
        )
    )

    # The autoscaler's triggers and the thrashing alert query what a replica exports.
    exported = {name for name, _ in samples} | {"up"}
    scaled = find(render(OVERLAYS["aws"]), "ScaledObject")
    queries = [
        t["metadata"]["query"] for t in scaled["spec"]["triggers"] if "query" in t["metadata"]
    ]
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    queries += [r["expr"] for r in rules if r.get("alert") == "ModelhostFleetThrashing"]
    assert len(queries) == 3
    for query in queries:
        assert metric_names(query) <= exported, metric_names(query) - exported
