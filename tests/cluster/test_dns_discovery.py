"""The routing template the Kubernetes way (issue 10): replicas found through DNS, as a headless
Service answers, and the ring re-formed as the answers change, with no restart of HAProxy.

Replicas listen on 127.0.0.1-4 (all loopback) on one port, like pods on one containerPort; a
DNS server on loopback plays the cluster's DNS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelhost.cluster.replica import Replica, free_port
from modelhost.cluster.router import Router
from tests.cluster.conftest import TEMPLATE
from tests.support.databases import sqlite_url
from tests.support.dns import DnsServer
from tests.support.models import write_memory_model
from tests.support.traffic import X

MODELS = [f"model-{i}" for i in range(12)]
NAME = "modelhost-replicas.modelhost.svc.cluster.local"


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


def placement(front: str) -> dict[str, str]:
    """Which replica answers each model, one request at a time (nothing in flight: no spill)."""
    with httpx.Client(base_url=front, timeout=30) as http:
        served = {}
        for name in MODELS:
            answer = http.post(f"/v2/models/{name}/infer", json=X)
            assert answer.status_code == 200, answer.text
            served[name] = answer.headers["x-served-by"]
        return served


def test_the_ring_follows_dns_answers_without_a_restart(dns: DnsServer, tmp_path: Path) -> None:
    root = tmp_path / "models"
    for name in MODELS:
        write_memory_model(root, name, 1)
    port = free_port()
    environment = {
        "MODELHOST_MODEL_REPOSITORY": str(root),
        "MODELHOST_DATABASE_URL": sqlite_url(tmp_path),
        "MODELHOST_AUTH": "disabled",
        "MODELHOST_LOG_LEVEL": "warning",
    }
    pods = [
        Replica(i, port, tmp_path / "state", environment, host=f"127.0.0.{i}") for i in (1, 2, 3, 4)
    ]
    router = Router(
        TEMPLATE,
        port=free_port(),
        admin_port=free_port(),
        log_path=tmp_path / "router.log",
        discovery=f"{NAME}:{port}",
        nameserver=dns.address,
    )
    try:
        for pod in pods:
            pod.start()
        for pod in pods:
            pod.wait_ready()
        dns.records[NAME] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        router.start()
        assert router.process is not None
        pid = router.process.pid
        router.wait_until({1, 2, 3})
        three = placement(router.url)

        dns.records[NAME] = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]  # scale up
        router.wait_until({1, 2, 3, 4})
        four = placement(router.url)
        moved = {name: four[name] for name in MODELS if four[name] != three[name]}

        gone = next(slot for slot, state in router.states().items() if state.address == "127.0.0.2")
        dns.records[NAME] = ["127.0.0.1", "127.0.0.3", "127.0.0.4"]  # scale down
        router.wait_until({1, 2, 3, 4} - {gone})
        time.sleep(0.5)
        after = placement(router.url)
        assert router.process.pid == pid and router.process.poll() is None  # never restarted
    finally:
        router.stop()
        for pod in pods:
            pod.terminate()
        for pod in pods:
            pod.wait(30)
            pod.close()

    print(
        f"\nDNS 3 -> 4 addresses: {len(moved)} of {len(MODELS)} models moved, "
        f"to {set(moved.values())}; 4 -> 3: {sum(after[n] != four[n] for n in MODELS)} moved"
    )
    (new_slot,) = set(four.values()) - set(three.values())
    assert moved and set(moved.values()) == {new_slot}, moved
    assert len(moved) <= len(MODELS) // 2, moved
    # Scaling down moves exactly the models of the address that went away.
    assert {n for n in MODELS if after[n] != four[n]} == {
        n for n in MODELS if four[n] == f"replica{gone}"
    }
