"""Dynamic batching, bounded queues, deadlines and per-user limits, through a real server."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from tests.cache.helpers import cache_state
from tests.support.models import call_sizes, write_demo_models, write_python_model, write_slow_model
from tests.support.server import ServerProcess


def _set_batching(root: Path, name: str, batching: dict[str, float] | None) -> None:
    manifest_path = root / name / "1" / "model.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    manifest.pop("batching", None)
    if batching is not None:
        manifest["batching"] = batching
    manifest_path.write_text(yaml.safe_dump(manifest))


def _with_batching(root: Path, source: str, target: str, max_delay_ms: float) -> None:
    """A batched copy of ``source``; ``source`` itself runs one request per call."""
    shutil.copytree(root / source, root / target)
    _set_batching(root, target, {"max_delay_ms": max_delay_ms})
    _set_batching(root, source, None)


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    write_demo_models(root)
    _with_batching(root, "iris-sklearn", "iris-sklearn-batched", 20)
    _with_batching(root, "iris-onnx", "iris-onnx-batched", 20)
    write_slow_model(root, "widths", 0.0, batching=True)
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with ServerProcess(root, log) as server:
        yield server


def _rows(count: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.uniform(0.1, 8.0, size=(count, 4)).round(3)


def _body(rows: np.ndarray, datatype: str) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": datatype,
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ]
    }


@pytest.mark.parametrize(("model", "datatype"), [("iris-sklearn", "FP64"), ("iris-onnx", "FP32")])
def test_200_concurrent_requests_get_exactly_their_own_rows(
    batching_server: ServerProcess, model: str, datatype: str
) -> None:
    rows = _rows(200)
    # Some requests carry several rows, so a batch mixes requests of different sizes.
    chunks = [rows[i : i + 1] for i in range(150)] + [
        rows[150 + 5 * i : 155 + 5 * i] for i in range(10)
    ]

    async def send(target: str) -> list[dict[str, list[float]]]:
        async with httpx.AsyncClient(base_url=batching_server.url, timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"/v2/models/{target}/infer", json=_body(chunk, datatype))
                    for chunk in chunks
                )
            )
        assert {r.status_code for r in responses} == {200}, responses[0].text
        return [{o["name"]: o["data"] for o in r.json()["outputs"]} for r in responses]

    unbatched = asyncio.run(send(model))
    batched = asyncio.run(send(f"{model}-batched"))
    for chunk, alone, together in zip(chunks, unbatched, batched, strict=True):
        assert set(alone) == set(together)
        for name in alone:
            expected, got = np.array(alone[name]), np.array(together[name])
            assert got.shape == expected.shape and len(got) == len(chunk) * (
                3 if name == "probabilities" else 1
            )
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    with httpx.Client(base_url=batching_server.url) as client:
        stats = {m["name"]: m["scheduler"] for m in cache_state(client)["models"]}
    assert stats[f"{model}-batched"]["requests"] == len(chunks)
    # The point of it: far fewer model calls than requests.
    assert stats[f"{model}-batched"]["batches"] < len(chunks) / 3, stats
    assert stats[model]["batches"] == len(chunks)


def test_requests_with_different_inner_shapes_are_not_mixed(batching_server: ServerProcess) -> None:
    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=batching_server.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v2/models/widths/infer",
                        json={
                            "inputs": [
                                {
                                    "name": "x",
                                    "datatype": "FP32",
                                    "shape": [1, width],
                                    "data": [float(i)] * width,
                                }
                            ]
                        },
                    )
                    for i, width in enumerate([2, 3] * 30)
                )
            )

    responses = asyncio.run(send())
    for i, (response, width) in enumerate(zip(responses, [2, 3] * 30, strict=True)):
        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        assert output["shape"] == [1, width] and output["data"] == [i + 1.0] * width


def test_queued_request_past_its_deadline_is_dropped_before_it_runs(tmp_path: Path) -> None:
    root = tmp_path / "models"
    version_dir = write_slow_model(root, "slow", 0.6)
    with ServerProcess(root, tmp_path / "server.log") as server:

        async def scenario() -> tuple[httpx.Response, list[httpx.Response], float]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                await client.post("/v2/repository/models/slow/load")
                body = {
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]
                }
                first = asyncio.create_task(client.post("/v2/models/slow/infer", json=body))
                await asyncio.sleep(0.1)

                async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
                    started = time.monotonic()
                    response = await call
                    return response, time.monotonic() - started

                by_header = client.post(
                    "/v2/models/slow/infer", json=body, headers={"X-Request-Timeout-Ms": "150"}
                )
                tritonish = dict(body, parameters={"timeout": 150_000})  # microseconds
                by_parameter = client.post("/v2/models/slow/infer", json=tritonish)
                # Due after the two above and before the running call ends (at ~0.6 s): the
                # queue's one deadline timer must wake again for it after dropping them.
                later = client.post(
                    "/v2/models/slow/infer", json=body, headers={"X-Request-Timeout-Ms": "400"}
                )
                second, third, (fourth, waited) = await asyncio.gather(
                    by_header, by_parameter, timed(later)
                )
                return await first, [second, third, fourth], waited

        first, late_ones, waited = asyncio.run(scenario())
        assert first.status_code == 200
        for late in late_ones:
            assert late.status_code == 504, late.text
            assert late.json()["code"] == "deadline_exceeded"
        assert waited >= 0.38  # dropped at its own deadline, not at the earlier ones'
        assert call_sizes(version_dir) == [1]  # the expired ones never ran
        bad = httpx.post(
            f"{server.url}/v2/models/slow/infer",
            json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]},
            headers={"X-Request-Timeout-Ms": "soon"},
        )
        assert bad.status_code == 400


def test_full_queue_is_refused_at_once_with_retry_after(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_slow_model(root, "slow", 0.5, max_queue_size=2)
    with ServerProcess(root, tmp_path / "server.log") as server:

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                await client.post("/v2/repository/models/slow/load")
                body = {
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]
                }
                tasks = []
                for _ in range(5):
                    tasks.append(
                        asyncio.create_task(client.post("/v2/models/slow/infer", json=body))
                    )
                    await asyncio.sleep(0.05)
                return await asyncio.gather(*tasks)

        responses = asyncio.run(scenario())
        statuses = [r.status_code for r in responses]
        # One runs, two wait, the rest find the queue full.
        assert statuses == [200, 200, 200, 503, 503], statuses
        for refused in responses[3:]:
            assert refused.json()["code"] == "queue_full"
            assert int(refused.headers["retry-after"]) >= 1


def test_per_user_in_flight_limit_answers_429(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_slow_model(root, "slow", 0.3)
    env = {"MODELHOST_MAX_INFLIGHT_PER_USER": "2"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                await client.post("/v2/repository/models/slow/load")
                body = {
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]
                }
                return await asyncio.gather(
                    *(client.post("/v2/models/slow/infer", json=body) for _ in range(3))
                )

        responses = asyncio.run(scenario())
        assert sorted(r.status_code for r in responses) == [200, 200, 429]
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.json()["code"] == "too_many_requests" and refused.headers["retry-after"]


POISON_CODE = """
class Model:
    def load(self, path):
        pass

    def predict(self, inputs):
        x = inputs["x"]
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x * 10}
"""


def test_one_bad_request_does_not_fail_its_batch(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_python_model(
        root,
        "poison",
        POISON_CODE,
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
            "max_batch_size": 32,
            "batching": {"max_delay_ms": 50},
        },
    )
    values = [float(i) for i in range(12)] + [-1.0]
    with ServerProcess(root, tmp_path / "server.log") as server:

        async def send() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                await client.post("/v2/repository/models/poison/load")
                return await asyncio.gather(
                    *(
                        client.post(
                            "/v2/models/poison/infer",
                            json={
                                "inputs": [
                                    {"name": "x", "datatype": "FP32", "shape": [1], "data": [v]}
                                ]
                            },
                        )
                        for v in values
                    )
                )

        responses = asyncio.run(send())
        with httpx.Client(base_url=server.url) as client:
            stats = next(m for m in cache_state(client)["models"] if m["name"] == "poison")[
                "scheduler"
            ]
    for value, response in zip(values, responses, strict=True):
        if value < 0:
            assert response.status_code == 500 and "negative input" in response.json()["error"]
        else:
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == [value * 10]
    assert stats["batches"] < len(values)  # they really were batched together first


def test_request_that_could_not_run_before_its_deadline_is_refused_at_once(tmp_path: Path) -> None:
    root = tmp_path / "models"
    version_dir = write_slow_model(root, "slow", 0.3)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
    with ServerProcess(root, tmp_path / "server.log") as server:

        async def scenario() -> list[tuple[int, float, str]]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                # One request alone teaches the scheduler what a request costs (0.3 s).
                assert (await client.post("/v2/models/slow/infer", json=body)).status_code == 200

                async def send() -> tuple[int, float, str]:
                    started = asyncio.get_running_loop().time()
                    response = await client.post(
                        "/v2/models/slow/infer", json=body, headers={"X-Request-Timeout-Ms": "1000"}
                    )
                    elapsed = asyncio.get_running_loop().time() - started
                    return response.status_code, elapsed, response.json().get("code", "")

                tasks = []
                for _ in range(8):
                    tasks.append(asyncio.create_task(send()))
                    await asyncio.sleep(0.02)
                return await asyncio.gather(*tasks)

        outcomes = asyncio.run(scenario())
    served = [o for o in outcomes if o[0] == 200]
    refused = [o for o in outcomes if o[0] == 503]
    expired = [o for o in outcomes if o[0] == 504]
    # About three start within a second of 0.3 s calls; the rest are told so at once rather
    # than after waiting out their deadline in the queue.
    assert len(served) + len(refused) + len(expired) == 8, outcomes
    assert 2 <= len(served) <= 5 and len(expired) <= 1, outcomes
    assert len(refused) >= 2, outcomes
    assert all(code == "queue_full" and elapsed < 0.2 for _, elapsed, code in refused)
    assert all(elapsed < 1.0 + 0.3 + 0.2 for _, elapsed, _ in served)  # started in time
    assert len(call_sizes(version_dir)) == 1 + len(served)  # refused ones never ran
