"""The eviction policy of a real server, chosen by ``--eviction-policy`` or
MODELHOST_EVICTION_POLICY: the same requests evict the slow small model under LRU and the quick
big one under cost-aware."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cache.helpers import index_states, infer_body
from tests.support.models import load_count, write_memory_model
from tests.support.server import ServerProcess


@pytest.mark.parametrize(
    ("args", "env", "evicted", "kept"),
    [
        (["--eviction-policy", "cost-aware"], {}, "big-quick", "small-slow"),
        ([], {"MODELHOST_EVICTION_POLICY": "lru"}, "small-slow", "big-quick"),
    ],
)
def test_policy_decides_which_idle_model_makes_room(
    tmp_path: Path, args: list[str], env: dict[str, str], evicted: str, kept: str
) -> None:
    root = tmp_path / "models"
    folders = {
        "small-slow": write_memory_model(root, "small-slow", 30, load_delay=1.0),
        "big-quick": write_memory_model(root, "big-quick", 60),
        "new": write_memory_model(root, "new", 40),
    }
    env = {"MODELHOST_MEMORY_BUDGET": "110MiB", **env}
    with ServerProcess(root, tmp_path / "server.log", env=env, args=args) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            # small-slow first, so it is the least recently used when "new" needs room.
            for name in ("small-slow", "big-quick", "new"):
                response = client.post(f"/v2/models/{name}/infer", json=infer_body([1.0]))
                assert response.status_code == 200, response.text
            states = index_states(client)
            assert states[f"{evicted}/1"] == "UNAVAILABLE", states
            assert states[f"{kept}/1"] == "READY" and states["new/1"] == "READY", states
            client.post(f"/v2/models/{kept}/infer", json=infer_body([1.0])).raise_for_status()
    assert load_count(folders[kept]) == 1  # it answered again without a reload
