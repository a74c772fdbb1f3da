"""Moving an alias under steady traffic: no request fails, in-flight ones finish on the old
version, and the alias flips only once the new version is loaded."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.support.models import write_memory_model
from tests.support.server import ServerProcess

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


def test_alias_swap_under_load_fails_no_request(database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "m", 4, version=1, delay=0.01)
    # The new version takes a second to load: traffic must keep flowing to v1 meanwhile.
    write_memory_model(root, "m", 4, version=2, delay=0.01, load_delay=1.0)
    env = {"MODELHOST_DATABASE_URL": database_url}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:
        httpx.put(
            f"{server.url}/api/v1/models/m/aliases/production", json={"version": 1}, timeout=30
        )

        async def scenario() -> tuple[Counter[tuple[int, str]], float, float]:
            outcomes: Counter[tuple[int, str]] = Counter()
            stop = asyncio.Event()
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

                async def user() -> None:
                    while not stop.is_set():
                        response = await client.post(
                            "/v2/models/m/versions/production/infer", json=X
                        )
                        version = (
                            response.json().get("model_version", "")
                            if response.status_code == 200
                            else ""
                        )
                        outcomes[(response.status_code, version)] += 1

                users = [asyncio.create_task(user()) for _ in range(8)]
                await asyncio.sleep(0.5)
                started = time.monotonic()
                swap = await client.put("/api/v1/models/m/aliases/production", json={"version": 2})
                swapped = time.monotonic()
                assert swap.status_code == 200, swap.text
                await asyncio.sleep(0.5)
                stop.set()
                await asyncio.gather(*users)
                return outcomes, started, swapped

        outcomes, started, swapped = asyncio.run(scenario())
    statuses = {status for status, _ in outcomes}
    assert statuses == {200}, outcomes
    assert outcomes[(200, "1")] > 20 and outcomes[(200, "2")] > 20, outcomes
    assert swapped - started >= 0.9  # the alias waited for version 2's load
