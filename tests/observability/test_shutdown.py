"""SIGTERM under steady load: readiness drops at once, new requests get 503, every request in
flight finishes, usage records are flushed, and the process exits cleanly."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.databases import sqlite_url
from tests.support.models import write_python_model
from tests.support.server import ServerProcess

SLOW = """
import time

class Model:
    def load(self, path):
        pass

    def predict(self, inputs):
        time.sleep(0.4)
        return {"y": inputs["x"] + 1}
"""
X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


@dataclass
class Outcome:
    sent: float
    status: int | str


def test_sigterm_under_load_fails_no_request_in_flight(tmp_path: Path) -> None:
    root = tmp_path / "models"
    spec = {"type": "FP32", "shape": [-1]}
    write_python_model(
        root,
        "slow",
        SLOW,
        {
            "inputs": [{"name": "x", "datatype": spec["type"], "shape": spec["shape"]}],
            "outputs": [{"name": "y", "datatype": spec["type"], "shape": spec["shape"]}],
            "instances": 8,
        },
    )
    database_url = sqlite_url(tmp_path)
    env = {"MODELHOST_DATABASE_URL": database_url, "MODELHOST_SHUTDOWN_GRACE_SECONDS": "10"}
    server = ServerProcess(root, tmp_path / "server.log", env=env)
    with server:
        httpx.post(f"{server.url}/v2/repository/models/slow/load", timeout=30)

        async def scenario() -> tuple[list[Outcome], float, int, float]:
            outcomes: list[Outcome] = []
            stop = asyncio.Event()
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

                async def user() -> None:
                    while not stop.is_set():
                        sent = time.monotonic()
                        try:
                            status: int | str = (
                                await client.post("/v2/models/slow/infer", json=X)
                            ).status_code
                        except httpx.TransportError as exc:  # the server has closed its socket
                            status = type(exc).__name__
                        outcomes.append(Outcome(sent, status))
                        if status != 200:
                            await asyncio.sleep(0.05)

                users = [asyncio.create_task(user()) for _ in range(8)]
                await asyncio.sleep(1.5)
                sigterm_at = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.05)
                ready = (await client.get("/v2/health/ready")).status_code
                await asyncio.sleep(1.0)
                stop.set()
                await asyncio.gather(*users)
            exit_code = await asyncio.to_thread(server.process.wait, 30)
            return outcomes, sigterm_at, ready, exit_code

        outcomes, sigterm_at, ready, exit_code = asyncio.run(scenario())

    in_flight = [o for o in outcomes if o.sent < sigterm_at - 0.1]
    after = [o for o in outcomes if o.sent > sigterm_at]
    failed = [o for o in in_flight if o.status != 200]
    print(f"SIGTERM test: {len(in_flight)} requests sent before SIGTERM, {len(failed)} failed")
    assert len(in_flight) >= 16 and failed == []
    assert ready == 503  # readiness dropped at once
    assert after and all(o.status == 503 or isinstance(o.status, str) for o in after)
    assert exit_code == 0
    # The usage writer flushed on the way out: one record per request the API answered.
    served = sum(1 for o in outcomes if o.status == 200)
    database = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    try:
        recorded = database.execute(
            "SELECT count(*) FROM usage_records WHERE status = 200"
        ).fetchone()[0]
    finally:
        database.close()
    assert recorded == served
    assert "shutting down" in server.log()
