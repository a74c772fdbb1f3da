"""The memory budget under real traffic: eviction, refusal, and the process's real memory."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest

from tests.cache.helpers import cache_state, infer_body, model_state
from tests.support.models import write_memory_model
from tests.support.server import ServerProcess

MB = 1 << 20
MODEL_MB = 60
BUDGET = 100 * MB  # fits one 60 MB model, never two
# Memory the process may hold beyond the budget: request buffers, thread stacks, allocator slack.
RSS_SLACK = 48 * MB


class MemoryWatcher(threading.Thread):
    """Samples the server's accounting and RSS while traffic runs; remembers the worst."""

    def __init__(self, url: str, pid: int, baseline_rss: int) -> None:
        super().__init__(daemon=True)
        self.url, self.process, self.baseline = url, psutil.Process(pid), baseline_rss
        self.stop = threading.Event()
        self.max_accounted = 0
        self.max_resident = 0
        self.max_rss_growth = 0
        self.samples = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                state = cache_state(client)
                accounted = state["used_bytes"] + state["freeing_bytes"] + state["reserved_bytes"]
                resident = sum(m["footprint_bytes"] for m in state["models"])
                self.max_accounted = max(self.max_accounted, accounted)
                self.max_resident = max(self.max_resident, resident)
                growth = self.process.memory_info().rss - self.baseline
                self.max_rss_growth = max(self.max_rss_growth, growth)
                self.samples += 1
                time.sleep(0.01)


@pytest.fixture
def three_models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for name in ("alpha", "beta", "gamma"):
        write_memory_model(root, name, MODEL_MB, delay=0.02)
    return root


def test_budget_for_one_of_three_models_under_traffic(three_models: Path, tmp_path: Path) -> None:
    with ServerProcess(
        three_models, tmp_path / "server.log", args=["--memory-budget", str(BUDGET)]
    ) as server:
        baseline = psutil.Process(server.pid).memory_info().rss
        watcher = MemoryWatcher(server.url, server.pid, baseline)
        watcher.start()
        outcomes: Counter[tuple[str, int]] = Counter()

        async def user(client: httpx.AsyncClient, seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(25):
                name = rng.choice(["alpha", "beta", "gamma"])
                response = await client.post(f"/v2/models/{name}/infer", json=infer_body([1.0]))
                outcomes[(name, response.status_code)] += 1
                if response.status_code == 503:
                    body = response.json()
                    assert body["code"] == "insufficient_memory", body
                    assert re.search(r"needs 6\d\.\d MiB", body["error"]), body
                    assert "of the 100.0 MiB memory budget is free" in body["error"]
                    assert int(response.headers["retry-after"]) >= 1
                else:
                    assert response.status_code == 200, response.text
                    assert response.json()["outputs"][0]["data"] == [2.0]
                # Think time: without gaps the model in use is always leased and, rightly,
                # never evicted, so the others could only ever get 503.
                await asyncio.sleep(rng.uniform(0.0, 0.2))

        async def traffic() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                await asyncio.gather(*(user(client, seed) for seed in range(6)))

        try:
            asyncio.run(traffic())
        finally:
            watcher.stop.set()
            watcher.join()
        with httpx.Client(base_url=server.url) as client:
            final = cache_state(client)

    print(
        f"cache test: {sum(outcomes.values())} requests, {dict(outcomes)}; evictions "
        f"{final['stats']['evictions']}; peak accounted {watcher.max_accounted / MB:.1f} MiB, "
        f"peak resident {watcher.max_resident / MB:.1f} MiB, peak RSS growth "
        f"{watcher.max_rss_growth / MB:.1f} MiB (budget {BUDGET / MB:.0f} MiB, "
        f"{watcher.samples} samples)"
    )
    assert set(status for _, status in outcomes) <= {200, 503}
    for name in ("alpha", "beta", "gamma"):  # eviction let every model serve at some point
        assert outcomes[(name, 200)] > 0, outcomes
    assert final["stats"]["evictions"] >= 2
    assert watcher.samples > 10
    assert watcher.max_accounted <= BUDGET
    assert watcher.max_resident <= BUDGET
    assert watcher.max_rss_growth <= BUDGET + RSS_SLACK, (
        f"RSS grew {watcher.max_rss_growth / MB:.1f} MiB over a {BUDGET / MB:.0f} MiB budget"
    )
    measured = [m["measured_bytes"] for m in final["models"] if m["measured_bytes"]]
    # Footprints are measured, not taken from the hint: each is the 60 MiB block and a little.
    assert measured and all(MODEL_MB * MB * 0.95 <= b <= MODEL_MB * MB * 1.25 for b in measured)


def test_leased_model_is_never_evicted(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "slow", MODEL_MB, delay=1.5)
    write_memory_model(root, "other", MODEL_MB)
    with ServerProcess(
        root, tmp_path / "server.log", args=["--memory-budget", str(BUDGET)]
    ) as server:

        async def scenario() -> tuple[httpx.Response, httpx.Response, dict[str, object] | None]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                slow = asyncio.create_task(
                    client.post("/v2/models/slow/infer", json=infer_body([3.0]))
                )
                # Wait until the slow request holds its lease inside predict.
                for _ in range(200):
                    state = (await client.get("/api/v1/cache")).json()
                    entry = next((m for m in state["models"] if m["name"] == "slow"), None)
                    if entry and entry["state"] == "READY" and entry["leases"] == 1:
                        break
                    await asyncio.sleep(0.02)
                other = await client.post("/v2/models/other/infer", json=infer_body([1.0]))
                during = next(
                    m
                    for m in (await client.get("/api/v1/cache")).json()["models"]
                    if m["name"] == "slow"
                )
                return await slow, other, during

        slow, other, during = asyncio.run(scenario())
        assert other.status_code == 503 and other.json()["code"] == "insufficient_memory"
        assert "in use" in other.json()["error"]
        assert during is not None and during["state"] == "READY"
        assert slow.status_code == 200, slow.text  # its model stayed whole under it
        assert slow.json()["outputs"][0]["data"] == [6.0]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            # Once the lease is gone the idle model gives way.
            after = client.post("/v2/models/other/infer", json=infer_body([1.0]))
            assert after.status_code == 200
            assert model_state(client, "slow")["state"] == "UNAVAILABLE"  # type: ignore[index]


def test_model_bigger_than_the_budget_is_refused_with_sizes(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "huge", 200)
    with ServerProcess(
        root, tmp_path / "server.log", args=["--memory-budget", str(BUDGET)]
    ) as server:
        response = httpx.post(f"{server.url}/v2/models/huge/infer", json=infer_body([1.0]))
        assert response.status_code == 503
        assert response.headers["retry-after"]
        message = response.json()["error"]
        assert "needs 200.0 MiB" in message and "100.0 MiB" in message
        # Nothing was loaded and nothing is held for it.
        state = httpx.get(f"{server.url}/api/v1/cache").json()
        assert state["used_bytes"] == state["reserved_bytes"] == 0


def test_unhinted_model_is_measured_and_overshoot_evicts_idle(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "first", MODEL_MB, hint=False)
    write_memory_model(root, "second", MODEL_MB, hint=False)
    with ServerProcess(
        root, tmp_path / "server.log", args=["--memory-budget", str(BUDGET)]
    ) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post("/v2/models/first/infer", json=infer_body([1.0])).status_code == 200
            first = model_state(client, "first")
            assert first is not None
            assert MODEL_MB * MB * 0.95 <= first["measured_bytes"] <= MODEL_MB * MB * 1.25
            # The second model's size is unknown (its files are tiny), so nothing is evicted
            # before its load; once measured it is over budget and the idle first model goes.
            assert client.post("/v2/models/second/infer", json=infer_body([1.0])).status_code == 200
            state = cache_state(client)
            states = {m["name"]: m["state"] for m in state["models"]}
            assert states == {"first": "UNAVAILABLE", "second": "READY"}
            assert state["used_bytes"] <= BUDGET
            # Now both sizes are known: going back to first evicts second before loading.
            assert client.post("/v2/models/first/infer", json=infer_body([1.0])).status_code == 200
            assert cache_state(client)["stats"]["evictions"] == 2
