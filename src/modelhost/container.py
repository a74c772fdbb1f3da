"""What the container lets this process use: its memory limit and CPU quota, from the cgroup.

A pod limited to 4 CPUs and 16 GiB on a 64-core, 512 GiB node sees the node's numbers in
``os.cpu_count()`` and ``/proc/meminfo``; sizing threads and the model budget from those starts
64 threads per runtime and gets the pod OOM-killed. The limits are in the process's cgroup:
cgroup v2 (``memory.max``, ``cpu.max``) and, for older nodes, v1 (``memory.limit_in_bytes``,
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``). Every reader takes the filesystem roots as
arguments so tests can lay out a cgroup tree of their own.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import psutil

from modelhost.units import parse_bytes

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# v1 writes "no limit" as a page-rounded 2**63; anything this large is no limit.
_UNLIMITED = 1 << 60
# ``auto``: what resident models may hold is the limit less the process's own needs (the
# interpreter and imported frameworks, request buffers, allocator slack): a fixed part and a
# part that grows with the limit.
AUTO_HEADROOM_BYTES = 512 * 1024**2
AUTO_HEADROOM_FRACTION = 0.10
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _cgroup_dirs(root: Path, proc_self_cgroup: Path, controller: str) -> list[Path]:
    """Where this process's cgroup files may be, most specific first: the path named in
    /proc/self/cgroup (host cgroup namespace), then the root (a container's own namespace)."""
    dirs: list[Path] = []
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # v2: one unified hierarchy
            dirs.append(root / path.lstrip("/"))
        elif controller in controllers.split(","):  # v1: one hierarchy per controller set
            dirs.append(root / controllers / path.lstrip("/"))
            dirs.append(root / controller / path.lstrip("/"))
    dirs.extend([root, root / controller])
    return [d for i, d in enumerate(dirs) if d not in dirs[:i]]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def memory_limit(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int | None:
    """The cgroup's memory limit in bytes, or None when there is none."""
    for folder in _cgroup_dirs(root, proc_self_cgroup, "memory"):
        for name in ("memory.max", "memory.limit_in_bytes"):
            raw = _read(folder / name)
            if raw is None:
                continue
            if raw == "max" or not raw.isdigit() or int(raw) >= _UNLIMITED:
                return None
            return int(raw)
    return None


def cpu_quota(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The CPUs the cgroup's quota allows (``cpu.max`` 400000/100000 → 4.0), or None."""
    for folder in _cgroup_dirs(root, proc_self_cgroup, "cpu"):
        raw = _read(folder / "cpu.max")
        if raw is not None:
            quota, _, period = raw.partition(" ")
            if quota == "max" or not quota.isdigit() or not period.isdigit():
                return None
            return int(quota) / int(period)
        quota_us = _read(folder / "cpu.cfs_quota_us")
        period_us = _read(folder / "cpu.cfs_period_us")
        if quota_us is not None and period_us is not None:
            if quota_us.startswith("-") or not quota_us.isdigit() or not period_us.isdigit():
                return None
            return int(quota_us) / int(period_us)
    return None


def available_cores(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """Cores this process may keep busy: the CPUs it may run on (taskset, cpusets), capped by
    the cgroup's CPU quota rounded up (a 2.5-CPU quota keeps 3 threads busy part-time)."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - modelhost targets Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota(root, proc_self_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def memory_budget(
    value: str | int | float,
    root: Path = CGROUP_ROOT,
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
) -> int:
    """A budget as written in settings: bytes (``8GiB``), ``auto`` (the container's memory
    limit less headroom for the process itself), or a percentage of that limit (``70%``).
    Without a cgroup limit, ``auto`` and percentages are taken of the machine's memory."""
    if not isinstance(value, str):
        return parse_bytes(value)
    text = value.strip().lower()
    percent = _PERCENT.match(text)
    if text != "auto" and percent is None:
        return parse_bytes(value)
    limit = memory_limit(root, proc_self_cgroup) or psutil.virtual_memory().total
    if percent is not None:
        share = float(percent.group(1))
        if not 0 < share <= 100:
            raise ValueError(f"a memory budget percentage must be in (0, 100]: {value!r}")
        return int(limit * share / 100)
    budget = int(limit - AUTO_HEADROOM_BYTES - AUTO_HEADROOM_FRACTION * limit)
    if budget <= 0:
        raise ValueError(
            f"memory limit {limit} bytes leaves nothing for models after the process's own "
            f"{AUTO_HEADROOM_BYTES} bytes of headroom; raise the limit or set a budget in bytes"
        )
    return budget
