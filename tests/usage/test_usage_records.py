"""Usage records: one per request, readable by their owner, and none lost in a database outage."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.cli import create_user
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_cluster,
    postgres_url,
)
from tests.support.models import write_memory_model
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}


def test_every_request_leaves_one_record(database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "a", 1)
    write_memory_model(root, "b", 1)
    env = {"MODELHOST_DATABASE_URL": database_url, "MODELHOST_AUTH": "enabled"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:
        admin = {"Authorization": f"Bearer {create_user('root', 'admin', database_url)}"}
        user = {"Authorization": f"Bearer {create_user('ann', 'user', database_url)}"}
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(7):
                assert http.post("/v2/models/a/infer", json=X, headers=user).status_code == 200
            for _ in range(3):
                assert http.post("/v2/models/b/infer", json=X, headers=user).status_code == 200
            bad = http.post("/v2/models/a/infer", json={"inputs": []}, headers=user)
            assert bad.status_code == 400
            assert http.post("/v2/models/a/infer", json=X, headers=admin).status_code == 200

            page = eventually(lambda: _full_page(http, user, 11))
            assert len(page["records"]) == 5 and page["next_before_id"] is not None
            newest = page["records"][0]
            assert newest["status"] == 400 and newest["model"] == "a"
            ok = page["records"][1]
            assert ok["bytes_in"] > 0 and ok["bytes_out"] > 0 and ok["batch_size"] == 1
            assert ok["version"] == 1 and ok["latency_ms"] > 0
            rest = http.get(
                "/api/v1/me/usage",
                params={"limit": 100, "before_id": page["next_before_id"]},
                headers=user,
            ).json()
            assert len(rest["records"]) == 6 and rest["next_before_id"] is None
            only_b = http.get("/api/v1/me/usage", params={"model": "b"}, headers=user).json()
            assert len(only_b["records"]) == 3
            future = http.get(
                "/api/v1/me/usage", params={"since": "2999-01-01T00:00:00Z"}, headers=user
            )
            assert future.json()["records"] == []

            # Admins read anyone's, and a per-model summary.
            anns = http.get(
                "/api/v1/usage", params={"user": "ann", "limit": 100}, headers=admin
            ).json()
            assert len(anns["records"]) == 11
            assert (
                http.get("/api/v1/usage", params={"user": "nobody"}, headers=admin).status_code
                == 404
            )
            summary = {
                s["model"]: s for s in http.get("/api/v1/usage/summary", headers=admin).json()
            }
            assert summary["a"]["requests"] == 9 and summary["a"]["errors"] == 1
            assert summary["b"]["requests"] == 3


def _full_page(
    http: httpx.Client, headers: dict[str, str], expected: int
) -> dict[str, object] | None:
    # Wait until every record is in, then read the newest five.
    everything = http.get("/api/v1/me/usage", params={"limit": 100}, headers=headers).json()
    if len(everything["records"]) < expected:
        return None
    page: dict[str, object] = http.get(
        "/api/v1/me/usage", params={"limit": 5}, headers=headers
    ).json()
    return page


@pytest.fixture
def postgres_database() -> object:
    name = create_postgres_database()
    yield postgres_url(name)
    drop_postgres_database(name)


def test_postgres_outage_under_traffic_loses_no_record(
    postgres_database: str, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    write_memory_model(root, "m", 1, delay=0.005)
    env = {
        "MODELHOST_DATABASE_URL": postgres_database,
        "MODELHOST_AUTH": "enabled",
        "MODELHOST_DB_CONNECT_TIMEOUT_SECONDS": "1",
        "MODELHOST_REGISTRY_REFRESH_SECONDS": "1",
    }
    key = create_user("load", "user", postgres_database)
    headers = {"Authorization": f"Bearer {key}"}
    with ServerProcess(root, tmp_path / "server.log", env=env) as server:

        async def traffic(stop_at: float) -> Counter[int]:
            statuses: Counter[int] = Counter()
            async with httpx.AsyncClient(
                base_url=server.url, timeout=30, headers=headers
            ) as client:

                async def user() -> None:
                    while time.monotonic() < stop_at:
                        statuses[(await client.post("/v2/models/m/infer", json=X)).status_code] += 1

                await asyncio.gather(*(user() for _ in range(6)))
            return statuses

        async def scenario() -> Counter[int]:
            start = time.monotonic()
            load = asyncio.create_task(traffic(start + 12))
            await asyncio.sleep(3)
            await asyncio.to_thread(postgres_cluster, "stop")
            try:
                await asyncio.sleep(5)  # several seconds with no database at all
            finally:
                await asyncio.to_thread(postgres_cluster, "start")
            return await load

        statuses = asyncio.run(scenario())
        sent = sum(statuses.values())
        # The database is not on the request path: the outage costs no request.
        assert statuses == Counter({200: sent}), statuses
        admin = {"Authorization": f"Bearer {create_user('root', 'admin', postgres_database)}"}

        def stored() -> bool:
            response = httpx.get(f"{server.url}/api/v1/usage/summary", headers=admin, timeout=30)
            summary = response.json() if response.status_code == 200 else []
            return bool(summary) and summary[0]["requests"] == sent

        eventually(stored, timeout=30, interval=0.5)
        log = server.log()
    assert "usage records go to the journal" in log and "replayed" in log
    print(f"outage test: {sent} requests sent, {sent} usage records stored")


def test_a_replica_killed_right_after_answering_loses_no_record(
    database_url: str, tmp_path: Path
) -> None:
    """Each record reaches the journal before its answer leaves: SIGKILL (no drain, no flush)
    loses none, and the replica replays them when it starts again."""
    root = tmp_path / "models"
    write_memory_model(root, "m", 1)
    env = {
        "MODELHOST_DATABASE_URL": database_url,
        "MODELHOST_USAGE_JOURNAL": str(tmp_path / "usage.journal"),
        "MODELHOST_USAGE_FLUSH_SECONDS": "60",  # nothing reaches the database before the kill
    }
    with ServerProcess(root, tmp_path / "first.log", env=env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(25):
                assert http.post("/v2/models/m/infer", json=X).status_code == 200
        server.process.kill()
        server.process.wait()
    with ServerProcess(root, tmp_path / "second.log", env=env) as server:
        summary = eventually(lambda: _summary_with(server.url, 25), timeout=30, interval=0.2)
        log = server.log()
    assert summary["requests"] == 25, summary
    assert "replayed 25 usage records" in log


def _summary_with(url: str, requests: int) -> dict[str, int] | None:
    summary = httpx.get(f"{url}/api/v1/usage/summary", timeout=10).json()
    if summary and summary[0]["requests"] >= requests:
        return dict(summary[0])
    return None
