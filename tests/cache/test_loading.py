"""Loads under concurrency: single flight, failures and backoff, idle unload, pinned models."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.cache.helpers import cache_state, index_states, infer_body
from tests.support.models import (
    attempt_count,
    load_count,
    write_flaky_model,
    write_memory_model,
)
from tests.support.server import ServerProcess


def test_fifty_concurrent_first_requests_share_one_load(tmp_path: Path) -> None:
    root = tmp_path / "models"
    version_dir = write_memory_model(root, "single", 8, load_delay=1.0)
    other_dir = write_memory_model(root, "other", 8, load_delay=1.0)
    with ServerProcess(root, tmp_path / "server.log") as server:

        async def burst() -> tuple[list[httpx.Response], float, float]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                started = time.monotonic()
                single = [
                    client.post("/v2/models/single/infer", json=infer_body([float(i)]))
                    for i in range(50)
                ]
                # A different model's load does not queue behind the first one.
                other = client.post("/v2/models/other/infer", json=infer_body([1.0]))
                responses = await asyncio.gather(*single, other)
                return list(responses), started, time.monotonic()

        responses, started, finished = asyncio.run(burst())
        assert [r.status_code for r in responses] == [200] * 51
        for i, response in enumerate(responses[:50]):
            assert response.json()["outputs"][0]["data"] == [2.0 * i]
        assert load_count(version_dir) == 1
        assert load_count(other_dir) == 1
        # Two 1 s loads in parallel, not one after the other.
        assert finished - started < 1.9
        with httpx.Client(base_url=server.url) as client:
            stats = cache_state(client)["stats"]
        assert stats["loads"] == 2


def test_failed_load_is_reported_and_retried_with_backoff(tmp_path: Path) -> None:
    root = tmp_path / "models"
    version_dir = write_flaky_model(root)
    env = {"MODELHOST_LOAD_RETRY_INITIAL_SECONDS": "1.0"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            first = client.post("/v2/models/flaky/infer", json=infer_body([1.0]))
            assert first.status_code == 503
            assert first.json()["code"] == "model_load_failed"
            assert "storage hiccup" in first.json()["error"]
            assert first.headers["retry-after"] == "1"
            # Within the backoff: refused at once, no new attempt, still not ready.
            again = client.post("/v2/models/flaky/infer", json=infer_body([1.0]))
            assert again.status_code == 503 and "storage hiccup" in again.json()["error"]
            assert attempt_count(version_dir) == 1
            assert index_states(client)["flaky/1"] == "UNAVAILABLE"
            assert client.get("/v2/models/flaky/ready").status_code == 400
            # After the backoff the next request tries again; it fails again, so the wait doubles.
            time.sleep(1.1)
            third = client.post("/v2/models/flaky/infer", json=infer_body([1.0]))
            assert third.status_code == 503 and attempt_count(version_dir) == 2
            assert third.headers["retry-after"] == "2"
            # The cause goes away; after the backoff the model loads and serves.
            (version_dir / "fail").unlink()
            time.sleep(2.1)
            fixed = client.post("/v2/models/flaky/infer", json=infer_body([4.0]))
            assert fixed.status_code == 200, fixed.text
            assert fixed.json()["outputs"][0]["data"] == [4.0]
            assert attempt_count(version_dir) == 3
            assert index_states(client)["flaky/1"] == "READY"


def test_explicit_load_skips_the_backoff(tmp_path: Path) -> None:
    root = tmp_path / "models"
    version_dir = write_flaky_model(root)
    env = {"MODELHOST_LOAD_RETRY_INITIAL_SECONDS": "60"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            failed = client.post("/v2/repository/models/flaky/load")
            assert failed.status_code == 503 and "storage hiccup" in failed.json()["error"]
            (version_dir / "fail").unlink()
            # An operator's load goes ahead at once; a request would wait out the 60 s.
            assert client.post("/v2/models/flaky/infer", json=infer_body([1.0])).status_code == 503
            assert client.post("/v2/repository/models/flaky/load").status_code == 200
            assert client.get("/v2/models/flaky/ready").status_code == 200


def test_idle_models_are_unloaded(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "sleepy", 8)
    env = {"MODELHOST_IDLE_UNLOAD_SECONDS": "0.5"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post("/v2/models/sleepy/infer", json=infer_body([1.0])).status_code == 200
            assert index_states(client)["sleepy/1"] == "READY"
            deadline = time.monotonic() + 5
            while index_states(client)["sleepy/1"] != "UNAVAILABLE":
                assert time.monotonic() < deadline, "idle model was never unloaded"
                time.sleep(0.1)
            entry = client.post("/v2/repository/index").json()[0]
            assert "idle" in entry["reason"]
            assert cache_state(client)["used_bytes"] == 0
            # It comes back on the next request.
            assert client.post("/v2/models/sleepy/infer", json=infer_body([1.0])).status_code == 200


def test_pinned_models_load_at_start_and_others_stay_lazy(tmp_path: Path) -> None:
    root = tmp_path / "models"
    pinned_dir = write_memory_model(root, "pinned", 8)
    lazy_dir = write_memory_model(root, "lazy", 8)
    manifest = pinned_dir / "model.yaml"
    manifest.write_text(manifest.read_text() + "pinned: true\n")
    with ServerProcess(root, tmp_path / "server.log") as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert index_states(client) == {"lazy/1": "UNAVAILABLE", "pinned/1": "READY"}
            assert load_count(pinned_dir) == 1 and load_count(lazy_dir) == 0


def test_unload_waits_for_requests_in_flight(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "slow", 8, delay=1.0)
    with ServerProcess(root, tmp_path / "server.log") as server:

        async def scenario() -> tuple[httpx.Response, httpx.Response, float, float]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                assert (await client.post("/v2/repository/models/slow/load")).status_code == 200
                request = asyncio.create_task(
                    client.post("/v2/models/slow/infer", json=infer_body([5.0]))
                )
                await asyncio.sleep(0.3)
                unload = await client.post("/v2/repository/models/slow/unload")
                unloaded_at = time.monotonic()
                response = await request
                return response, unload, unloaded_at, time.monotonic()

        response, unload, unloaded_at, answered_at = asyncio.run(scenario())
        assert unload.status_code == 200
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [10.0]
        # The unload answered only after the request had its answer (within scheduling noise).
        assert unloaded_at >= answered_at - 0.1
        with httpx.Client(base_url=server.url) as client:
            assert index_states(client)["slow/1"] == "UNAVAILABLE"
