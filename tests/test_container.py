"""Sizing by the container: cgroup v2 and v1 trees laid out on disk as the kernel shows them."""

from __future__ import annotations

import math
import os
from pathlib import Path

import psutil
import pytest

from modelhost import container
from modelhost.settings import Settings

GiB = 1024**3


def cgroup_v2(tmp_path: Path, memory_max: str, cpu_max: str) -> tuple[Path, Path]:
    """A container with its own cgroup namespace: the limits sit at the root."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "memory.max").write_text(f"{memory_max}\n")
    (root / "cpu.max").write_text(f"{cpu_max}\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/\n")
    return root, proc


def cgroup_v1(
    tmp_path: Path, limit: int, quota_us: int, period_us: int = 100000
) -> tuple[Path, Path]:
    """A v1 node sharing the host's cgroup namespace: the limits sit under the pod's path."""
    root = tmp_path / "cgroup"
    pod = "kubepods/burstable/pod1234/abcd"
    memory = root / "memory" / pod
    cpu = root / "cpu,cpuacct" / pod
    memory.mkdir(parents=True)
    cpu.mkdir(parents=True)
    (memory / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (cpu / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
    (cpu / "cpu.cfs_period_us").write_text(f"{period_us}\n")
    # The root of the hierarchy has no limit: reading it instead would be wrong.
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"12:memory:/{pod}\n4:cpu,cpuacct:/{pod}\n1:name=systemd:/{pod}\n0::/{pod}\n")
    return root, proc


def test_cgroup_v2_limits(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, str(16 * GiB), "250000 100000")
    assert container.memory_limit(root, proc) == 16 * GiB
    assert container.cpu_quota(root, proc) == 2.5
    cpus = len(os.sched_getaffinity(0))
    assert container.available_cores(root, proc) == min(cpus, 3)


def test_cgroup_v2_without_limits(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, "max", "max 100000")
    assert container.memory_limit(root, proc) is None
    assert container.cpu_quota(root, proc) is None
    assert container.available_cores(root, proc) == len(os.sched_getaffinity(0))


def test_cgroup_v1_limits_under_the_pods_path(tmp_path: Path) -> None:
    root, proc = cgroup_v1(tmp_path, 4 * GiB, 100000)
    assert container.memory_limit(root, proc) == 4 * GiB
    assert container.cpu_quota(root, proc) == 1.0
    assert container.available_cores(root, proc) == 1


def test_cgroup_v1_unlimited(tmp_path: Path) -> None:
    root, proc = cgroup_v1(tmp_path, 9223372036854771712, -1)
    assert container.memory_limit(root, proc) is None
    assert container.cpu_quota(root, proc) is None


def test_no_cgroup_at_all(tmp_path: Path) -> None:
    assert container.memory_limit(tmp_path / "none", tmp_path / "none") is None
    assert container.available_cores(tmp_path / "none", tmp_path / "none") >= 1


def test_memory_budget_auto_keeps_headroom(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, str(16 * GiB), "max 100000")
    budget = container.memory_budget("auto", root, proc)
    headroom = 16 * GiB - budget
    assert abs(headroom - (container.AUTO_HEADROOM_BYTES + 0.10 * 16 * GiB)) <= 1
    assert 13 * GiB < budget < 14 * GiB
    assert container.memory_budget("70%", root, proc) == int(16 * GiB * 0.70)
    assert container.memory_budget(" 12.5 % ", root, proc) == 2 * GiB
    assert container.memory_budget("8GiB", root, proc) == 8 * GiB  # bytes stay bytes


def test_memory_budget_auto_refuses_a_limit_too_small(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, str(256 * 1024**2), "max 100000")
    with pytest.raises(ValueError, match="leaves nothing for models"):
        container.memory_budget("auto", root, proc)
    for bad in ("0%", "150%"):
        with pytest.raises(ValueError, match="percentage"):
            container.memory_budget(bad, root, proc)


def test_settings_use_this_process_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever this machine's cgroup says, settings read it the same way the functions do.
    monkeypatch.setenv("MODELHOST_MEMORY_BUDGET", "auto")
    monkeypatch.setenv("MODELHOST_CORES", "auto")
    limit = container.memory_limit() or psutil.virtual_memory().total
    settings = Settings()
    assert settings.memory_budget == container.memory_budget("auto")
    assert 0 < settings.memory_budget < limit
    assert settings.cores == container.available_cores()
    quota = container.cpu_quota()
    assert settings.cores <= (math.ceil(quota) if quota else os.cpu_count() or 1)
    monkeypatch.setenv("MODELHOST_MEMORY_BUDGET", "50%")
    assert Settings().memory_budget == int(limit * 0.5)


def test_served_models_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().models is None
    monkeypatch.setenv("MODELHOST_MODELS", "resnet, bert,")
    assert Settings().models == frozenset({"resnet", "bert"})
