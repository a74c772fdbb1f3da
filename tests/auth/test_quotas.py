"""Per-key quotas: requests a minute and requests in flight, in one process or shared in Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.support.cli import create_user, modelhost
from tests.support.databases import sqlite_url
from tests.support.models import write_slow_model
from tests.support.server import ServerProcess

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}


def _clear_of_minute_boundary() -> None:
    # A per-minute window that rolls over mid-test would reset the count.
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def _key(database_url: str, *options: str) -> dict[str, str]:
    create_user("someone", "user", database_url)
    output = modelhost("users", "keys", "create", "someone", *options, database_url=database_url)
    return {"Authorization": f"Bearer {output.strip().splitlines()[-1]}"}


def test_requests_per_minute_and_in_flight_limits(database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_slow_model(root, "slow", 0.5)
    env = {"MODELHOST_DATABASE_URL": database_url, "MODELHOST_AUTH": "enabled"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:
        per_minute = _key(database_url, "--requests-per-minute", "3")
        create_user("other", "user", database_url)
        output = modelhost(
            "users", "keys", "create", "other", "--max-in-flight", "1", database_url=database_url
        )
        one_at_a_time = {"Authorization": f"Bearer {output.strip().splitlines()[-1]}"}
        with httpx.Client(base_url=server.url, timeout=30) as http:
            _clear_of_minute_boundary()
            statuses = [
                http.post("/v2/models/slow/infer", json=X, headers=per_minute).status_code
                for _ in range(4)
            ]
            assert statuses == [200, 200, 200, 429]
            refused = http.post("/v2/models/slow/infer", json=X, headers=per_minute)
            assert refused.json()["code"] == "too_many_requests"
            assert 1 <= int(refused.headers["retry-after"]) <= 60

        async def concurrent() -> list[int]:
            async with httpx.AsyncClient(
                base_url=server.url, timeout=30, headers=one_at_a_time
            ) as client:
                responses = await asyncio.gather(
                    *(client.post("/v2/models/slow/infer", json=X) for _ in range(3))
                )
                after = await client.post("/v2/models/slow/infer", json=X)  # the others are done
                return [r.status_code for r in responses] + [after.status_code]

        statuses = asyncio.run(concurrent())
        assert sorted(statuses[:3]) == [200, 429, 429] and statuses[3] == 200


def test_redis_shares_the_counters_across_replicas(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_slow_model(root, "slow", 0.0)
    database_url = sqlite_url(tmp_path)
    env = {
        "MODELHOST_DATABASE_URL": database_url,
        "MODELHOST_AUTH": "enabled",
        "MODELHOST_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    with (
        ServerProcess(root, tmp_path / "a.log", env=env) as first,
        ServerProcess(root, tmp_path / "b.log", env=env) as second,
    ):
        headers = _key(database_url, "--requests-per-minute", "4")
        _clear_of_minute_boundary()
        statuses = []
        for server in (first, second, first, second, first, second):
            statuses.append(
                httpx.post(
                    f"{server.url}/v2/models/slow/infer", json=X, headers=headers, timeout=30
                ).status_code
            )
        # Four in all, whichever replica took them.
        assert statuses == [200, 200, 200, 200, 429, 429]
