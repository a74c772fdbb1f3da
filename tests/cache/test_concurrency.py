"""Model code in worker threads: one call per non-thread-safe instance, N instances in
parallel, an event loop that keeps answering, and a missing framework that breaks only its
own models."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.cache.helpers import infer_body
from tests.support.models import write_concurrency_model, write_demo_models, write_memory_model
from tests.support.server import ServerProcess


def _peaks(url: str, model: str, requests: int) -> list[int]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(f"/v2/models/{model}/infer", json=infer_body([1.0]))
                    for _ in range(requests)
                )
            )

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * requests, responses[0].text
    return [r.json()["outputs"][0]["data"][0] for r in responses]


def test_instances_bound_how_many_calls_run_at_once(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_concurrency_model(root, "single", instances=1)
    write_concurrency_model(root, "double", instances=2)
    with ServerProcess(root, tmp_path / "server.log") as server:
        # The model raises if two threads enter one instance; every answer is a 200.
        assert max(_peaks(server.url, "single", 20)) == 1
        assert max(_peaks(server.url, "double", 20)) == 2


def test_event_loop_answers_while_models_run(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "slow", 8, delay=1.0)
    write_memory_model(root, "slowload", 8, load_delay=1.0)
    with ServerProcess(root, tmp_path / "server.log") as server:

        async def scenario() -> list[float]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                await client.post("/v2/repository/models/slow/load")
                busy = [
                    asyncio.create_task(
                        client.post("/v2/models/slow/infer", json=infer_body([1.0]))
                    ),
                    asyncio.create_task(
                        client.post("/v2/models/slowload/infer", json=infer_body([1.0]))
                    ),
                ]
                await asyncio.sleep(0.2)
                latencies = []
                for _ in range(10):
                    started = time.monotonic()
                    assert (await client.get("/v2/health/live")).status_code == 200
                    latencies.append(time.monotonic() - started)
                    await asyncio.sleep(0.02)
                assert [r.status_code for r in await asyncio.gather(*busy)] == [200, 200]
                return latencies

        latencies = asyncio.run(scenario())
        # A predict and a load each take a second in a thread; the loop is never stuck behind them.
        assert max(latencies) < 0.25, latencies


def test_missing_framework_fails_only_its_models(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_demo_models(root)
    # A folder on PYTHONPATH whose onnxruntime cannot be imported: the server runs as it would
    # where the [onnx] extra was never installed.
    shadow = tmp_path / "no-onnxruntime" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'onnxruntime'\", name='onnxruntime')\n"
    )
    with ServerProcess(root, tmp_path / "server.log", python_path=[shadow.parent]) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            body = {
                "inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
                ]
            }
            response = client.post("/v2/models/iris-onnx/infer", json=body)
            assert response.status_code == 503
            assert response.json()["code"] == "runtime_not_installed"
            assert "pip install 'modelhost[onnx]'" in response.json()["error"]
            body["inputs"][0]["datatype"] = "FP64"
            assert client.post("/v2/models/iris-sklearn/infer", json=body).status_code == 200
            index = {e["name"]: e for e in client.post("/v2/repository/index").json()}
            assert index["iris-onnx"]["state"] == "UNAVAILABLE"
            assert "modelhost[onnx]" in index["iris-onnx"]["reason"]
