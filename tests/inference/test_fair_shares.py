"""Fair shares between users on one model, through a real server with API keys: a user sending
ten times the other's rate, past the model's capacity, neither slows the light user down nor
gets it refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np

from tests.support.cli import create_user
from tests.support.databases import sqlite_url
from tests.support.models import write_python_model
from tests.support.server import ServerProcess

# Eight instances that each take 200 ms a call: 40 requests a second at most. (Long calls and
# low rates keep the HTTP work, which the machine's other load can delay, small beside them.)
SLEEPER_CODE = """
import time

class Model:
    def load(self, path):
        pass

    def predict(self, inputs):
        time.sleep(0.2)
        return {"y": inputs["x"]}
"""
INSTANCES, SERVICE_SECONDS = 8, 0.2
LIGHT_RATE = 5.0  # requests a second
HEAVY_RATE = 10 * LIGHT_RATE  # past the model's capacity on its own
FLOOD_SECONDS = 9.0
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


async def _send_at_rate(
    client: httpx.AsyncClient, rate: float, seconds: float
) -> list[tuple[int, float]]:
    """Open loop: one request every 1/rate s whatever the answers do; (status, latency) each."""
    loop = asyncio.get_running_loop()

    async def one() -> tuple[int, float]:
        started = loop.time()
        response = await client.post("/v2/models/shared/infer", json=BODY)
        return response.status_code, loop.time() - started

    tasks = []
    begin = loop.time()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, begin + i / rate - loop.time()))
        tasks.append(asyncio.create_task(one()))
    return list(await asyncio.gather(*tasks))


def _p99(samples: list[tuple[int, float]]) -> float:
    return float(np.percentile([latency for status, latency in samples if status == 200], 99))


def test_light_user_keeps_its_latency_and_is_never_refused_while_the_heavy_one_is(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    write_python_model(
        root,
        "shared",
        SLEEPER_CODE,
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
            "instances": INSTANCES,
            "max_queue_size": 24,
        },
    )
    database = sqlite_url(tmp_path)
    env = {"MODELHOST_DATABASE_URL": database, "MODELHOST_AUTH": "enabled"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:
        light_key = create_user("light", "user", database)
        heavy_key = create_user("heavy", "user", database)
        # Latency on this shared machine has stalls that have nothing to do with the queue (a
        # p99 of 30 samples is their second largest): a second round is allowed for the
        # latency bound alone. Refusals are checked in every round.
        for attempt in range(2):
            alone, together, flood = asyncio.run(_measure(server.url, light_key, heavy_key))
            light_refused = sum(status != 200 for status, _ in alone + together)
            heavy_refused = sum(status == 503 for status, _ in flood)
            p99_alone, p99_together = _p99(alone), _p99(together)
            print(
                f"round {attempt + 1}: light p99 alone {p99_alone * 1000:.0f} ms, with the heavy "
                f"user {p99_together * 1000:.0f} ms ({p99_together / p99_alone:.2f}x); refused: "
                f"light {light_refused}/{len(alone) + len(together)}, heavy "
                f"{heavy_refused}/{len(flood)}"
            )
            assert light_refused == 0
            assert {status for status, _ in flood} <= {200, 503}
            assert heavy_refused > 0  # the model really was past its capacity
            # The heavy user got what the light one left: the model ran near its capacity.
            served = sum(status == 200 for status, _ in flood) + len(together)
            assert served >= 0.6 * (INSTANCES / SERVICE_SECONDS) * FLOOD_SECONDS
            if p99_together <= 2 * p99_alone:
                break
        else:
            raise AssertionError("the light user's p99 more than doubled in both rounds")


async def _measure(
    url: str, light_key: str, heavy_key: str
) -> tuple[list[tuple[int, float]], list[tuple[int, float]], list[tuple[int, float]]]:
    """The light user alone; then the heavy one floods while the light one goes on."""

    def client(key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=url,
            timeout=30,
            headers={"Authorization": f"Bearer {key}"},
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        )

    async with client(light_key) as light, client(heavy_key) as heavy:
        await light.post("/v2/models/shared/infer", json=BODY)  # loads it
        await heavy.post("/v2/models/shared/infer", json=BODY)  # key checked and cached
        alone = await _send_at_rate(light, LIGHT_RATE, 6.0)
        flood = asyncio.create_task(_send_at_rate(heavy, HEAVY_RATE, FLOOD_SECONDS))
        await asyncio.sleep(2.0)  # the heavy user's backlog fills the queue
        together = await _send_at_rate(light, LIGHT_RATE, 6.0)
        return alone, together, await flood
