"""Replicas that start at the same instant on a fresh database all become ready (issue 10).

Before the migrations lock and the registry's tolerance of the insert race, replicas started
together died with ``table users already exists`` or ``Conflict: model 'm5' already has a
version 1``.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.cluster.conftest import running_cluster
from tests.support.models import write_memory_model
from tests.support.traffic import X

MODELS = [f"m{i}" for i in range(6)]


def test_four_replicas_started_at_once_on_a_fresh_database_all_become_ready(
    database_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    for name in MODELS:
        write_memory_model(root, name, 1)
    with running_cluster(root, tmp_path / "cluster", database_url, replicas=4) as cluster:
        assert len(cluster.replicas) == 4
        for replica in cluster.replicas.values():
            assert httpx.get(f"{replica.url}/v2/health/ready").status_code == 200
            # Each serves every model, and sees each registered exactly once.
            for name in MODELS:
                answer = httpx.post(f"{replica.url}/v2/models/{name}/infer", json=X, timeout=30)
                assert answer.status_code == 200, answer.text
            listed = httpx.get(f"{replica.url}/api/v1/models").json()
            assert sorted(m["name"] for m in listed) == MODELS
            assert all([v["version"] for v in m["versions"]] == [1] for m in listed)
        for replica in cluster.replicas.values():
            log = replica.log_tail(10_000)
            assert "Conflict" not in log and "already exists" not in log, log
