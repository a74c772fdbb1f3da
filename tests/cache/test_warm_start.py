"""Warm restart: a server that starts again loads, without a request, the models it served most
in the last hour (from the usage records), within the budget, and its readiness waits for that
no longer than MODELHOST_WARM_START_READY_WAIT_SECONDS."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.cache.helpers import index_states, infer_body
from tests.support.databases import sqlite_url
from tests.support.models import load_count, write_memory_model
from tests.support.server import ServerProcess

LOAD_SECONDS = 1.0
RESIDENT_WITHIN = 30.0  # seconds from the process's start (startup itself takes 3-10 s here)


def _start(root: Path, log: Path, env: dict[str, str]) -> tuple[ServerProcess, float]:
    started = time.monotonic()
    server = ServerProcess(root, log, env=env)
    server.__enter__()
    return server, time.monotonic() - started


def test_hot_models_are_back_without_a_request_and_readiness_waits_no_longer_than_told(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    folders = {
        name: write_memory_model(root, name, 20, load_delay=LOAD_SECONDS)
        for name in ("hot", "warm", "cold", "too-big")
    }
    write_memory_model(root, "too-big", 70, load_delay=LOAD_SECONDS)
    base = {"MODELHOST_DATABASE_URL": sqlite_url(tmp_path), "MODELHOST_MEMORY_BUDGET": "90MiB"}

    # First life: traffic for hot (3), warm (2) and too-big (1: it fits alone, not beside them).
    server, cold_start = _start(root, tmp_path / "first.log", base)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for name, count in (("too-big", 1), ("hot", 3), ("warm", 2)):
                for _ in range(count):
                    response = client.post(f"/v2/models/{name}/infer", json=infer_body([1.0]))
                    assert response.status_code == 200, response.text
    finally:
        server.stop()  # the usage records are flushed on the way out

    # Second life, readiness waits at most 0.5 s: ready before the preload is done, then the
    # hot models come back on their own.
    env = {**base, "MODELHOST_WARM_START_READY_WAIT_SECONDS": "0.5"}
    server, warm_start = _start(root, tmp_path / "second.log", env)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            at_ready = index_states(client)
            deadline = time.monotonic() - warm_start + RESIDENT_WITHIN
            while time.monotonic() < deadline:
                states = index_states(client)
                if states["hot/1"] == states["warm/1"] == "READY":
                    break
                time.sleep(0.1)
            back_after = time.monotonic() - deadline + RESIDENT_WITHIN
    finally:
        server.stop()
    print(
        f"ready {cold_start:.1f} s after start with no records, {warm_start:.1f} s with them "
        f"(wait 0.5 s); hot and warm resident {back_after:.1f} s after start; at ready: "
        f"{at_ready}"
    )
    assert states["hot/1"] == states["warm/1"] == "READY", states
    assert states["cold/1"] == "UNAVAILABLE"  # never asked for
    # Served in the hour, but bigger than the budget's room once the busier hot and warm are
    # in: preloading never evicts.
    assert states["too-big/1"] == "UNAVAILABLE"
    assert [load_count(folders[name]) for name in ("hot", "warm", "cold")] == [2, 2, 0]
    # Readiness did not wait for two 1 s loads, nor for much more than its 0.5 s.
    assert not at_ready["hot/1"] == at_ready["warm/1"] == "READY", at_ready
    assert warm_start <= cold_start + 0.5 + 3.0

    # Third life, readiness may wait 30 s: it waits for the preload, which is all it takes.
    env = {**base, "MODELHOST_WARM_START_READY_WAIT_SECONDS": "30"}
    server, patient_start = _start(root, tmp_path / "third.log", env)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            at_ready = index_states(client)
    finally:
        server.stop()
    assert at_ready["hot/1"] == at_ready["warm/1"] == "READY", at_ready
    assert patient_start < 30
