"""/metrics scraped from a real server after known traffic."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import create_user
from tests.support.databases import sqlite_url
from tests.support.models import write_memory_model, write_python_model
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}

BATCHED = """
import time

class Model:
    def load(self, path):
        pass

    def predict(self, inputs):
        time.sleep(0.05)
        return {"y": inputs["x"] * 2}
"""


def scrape(
    url: str, headers: dict[str, str] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_match_the_traffic_sent(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "a", 2)
    write_memory_model(root, "idle", 2)
    write_python_model(
        root,
        "batched",
        BATCHED,
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
            "max_batch_size": 16,
            "batching": {"max_delay_ms": 20},
            "max_queue_size": 64,
        },
    )
    with (
        ServerProcess(root, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        for _ in range(5):
            assert http.post("/v2/models/a/infer", json=X).status_code == 200
        for _ in range(2):
            assert http.post("/v2/models/a/infer", json={"inputs": []}).status_code == 400
        assert http.post("/v2/models/nope/infer", json=X).status_code == 404

        import asyncio

        async def burst() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                responses = await asyncio.gather(
                    *(client.post("/v2/models/batched/infer", json=X) for _ in range(12))
                )
                assert {r.status_code for r in responses} == {200}

        asyncio.run(burst())
        samples = scrape(server.url)
        exposition = http.get("/metrics").text
        index = {e["name"]: e["state"] for e in http.post("/v2/repository/index").json()}

    requests = "modelhost_requests_total"
    assert value(samples, requests, model="a", version="1", endpoint="infer", status="200") == 5
    assert value(samples, requests, model="a", version="1", endpoint="infer", status="400") == 2
    # A name that is no model does not become a label value of its own.
    assert (
        value(samples, requests, model="_unresolved", version="", endpoint="infer", status="404")
        == 1
    )
    assert not any(labels and ("model", "nope") in labels for _, labels in samples)
    assert (
        value(samples, requests, model="batched", version="1", endpoint="infer", status="200") == 12
    )
    duration = "modelhost_request_duration_seconds_count"
    assert value(samples, duration, model="a", version="1", endpoint="infer", status="200") == 5

    # Twelve requests ran in fewer batches, and each waited in the queue.
    assert value(samples, "modelhost_batch_size_sum", model="batched", version="1") == 12
    assert value(samples, "modelhost_batch_size_count", model="batched", version="1") < 12
    assert value(samples, "modelhost_queue_wait_seconds_count", model="batched", version="1") == 12
    assert value(samples, "modelhost_queue_depth", model="batched", version="1") == 0
    assert value(samples, "modelhost_queue_capacity", model="batched", version="1") == 64

    # The cache's gauges agree with the repository index.
    ready = sorted(name for name, state in index.items() if state == "READY")
    assert ready == ["a", "batched"]
    assert value(samples, "modelhost_resident_models") == len(ready)
    for name, state in index.items():
        assert (
            value(samples, "modelhost_model_state", model=name, version="1", state=state) == 1
            if name != "idle"
            else True
        )
    resident = sum(
        value(samples, "modelhost_model_memory_bytes", model=name, version="1") for name in ready
    )
    assert value(samples, "modelhost_resident_bytes") == resident > 2 << 20
    assert value(samples, "modelhost_memory_budget_bytes") == 8 << 30
    assert value(samples, "modelhost_model_loads_total") == 2
    assert value(samples, "modelhost_cache_misses_total") >= 2
    assert value(samples, "modelhost_cache_hits_total") >= 4
    assert (
        value(
            samples,
            "modelhost_model_load_seconds_count",
            model="a",
            version="1",
            phase="total",
            source="disk",  # a local repository: nothing came over the network
        )
        == 1
    )
    assert value(samples, "process_resident_memory_bytes") > resident
    assert value(samples, "modelhost_requests_in_flight") == 0

    # The load phases the help text names are the ones recorded, no more and no fewer.
    recorded = {
        dict(labels)["phase"]
        for name, labels in samples
        if name == "modelhost_model_load_seconds_count"
    }
    (family,) = (
        f
        for f in text_string_to_metric_families(exposition)
        if f.name == "modelhost_model_load_seconds"
    )
    named = re.search(r"\(([^)]*)\)", family.documentation)
    assert named is not None and set(named.group(1).split(", ")) == recorded


def test_metrics_need_a_key_unless_made_public(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "a", 1)
    database_url = sqlite_url(tmp_path)
    env = {"MODELHOST_AUTH": "enabled", "MODELHOST_DATABASE_URL": database_url}
    with ServerProcess(root, tmp_path / "private.log", env=env) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        key = create_user("prometheus", "user", database_url)
        assert "modelhost_memory_budget_bytes" in str(
            scrape(server.url, {"Authorization": f"Bearer {key}"})
        )
    with ServerProcess(
        root, tmp_path / "public.log", env={**env, "MODELHOST_METRICS_PUBLIC": "true"}
    ) as server:
        assert scrape(server.url)


SLOW_LOAD = """
import os
import time

class Model:
    def load(self, path):
        # Loads until the test removes the gate file (bounded, so nothing hangs forever).
        gate = os.path.join(path, "gate")
        deadline = time.monotonic() + 60
        while os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)

    def predict(self, inputs):
        return {"y": inputs["x"]}
"""


def test_requests_waiting_for_a_load_are_counted(tmp_path: Path) -> None:
    """The autoscaler's demand signal: requests held up by a model that is still loading."""
    manifest = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
    }
    version_dir = write_python_model(tmp_path / "models", "slow", SLOW_LOAD, manifest)
    gate = version_dir / "gate"
    gate.write_text("")
    with ServerProcess(tmp_path / "models", tmp_path / "server.log") as server:
        assert value(scrape(server.url), "modelhost_requests_waiting_for_load") == 0
        with ThreadPoolExecutor(3) as pool:
            calls = [
                pool.submit(httpx.post, f"{server.url}/v2/models/slow/infer", json=X, timeout=60)
                for _ in range(3)
            ]
            eventually(
                lambda: value(scrape(server.url), "modelhost_requests_waiting_for_load") == 3
            )
            gate.unlink()
            assert all(call.result().status_code == 200 for call in calls)
        assert value(scrape(server.url), "modelhost_requests_waiting_for_load") == 0
