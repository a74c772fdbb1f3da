"""Local clusters for the tests: real replicas and the real routing tier, on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from modelhost.cluster.local import ClusterSpec, LocalCluster

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy/k8s/components/routing/haproxy.cfg"


@contextmanager
def running_cluster(
    repository: Path, state_dir: Path, database_url: str, **options: Any
) -> Iterator[LocalCluster]:
    environment = {
        "MODELHOST_AUTH": "disabled",
        "MODELHOST_LOG_LEVEL": "warning",
        **options.pop("environment", {}),
    }
    spec = ClusterSpec(
        model_repository=str(repository),
        template=TEMPLATE,
        port=0,
        database_url=database_url,
        state_dir=state_dir,
        environment=environment,
        **options,
    )
    cluster = LocalCluster(spec)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def resident(url: str) -> set[str]:
    """The models READY on one replica, from its repository index."""
    entries = httpx.post(f"{url}/v2/repository/index", json={}, timeout=30).json()
    return {e["name"] for e in entries if e["state"] == "READY"}


def counter(url: str, name: str, model: str | None = None) -> float:
    """The sum of a metric's samples on one replica's /metrics (only ``model``'s, if given)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            if model is None or f'model="{model}"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total
