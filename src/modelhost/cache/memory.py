"""Reading and returning the process's memory: the ground truth of model footprints."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable
from typing import cast

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _load_libc()


def process_rss() -> int:
    """Resident set size of this process in bytes (Linux: /proc/self/statm; else psutil)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33+)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    function = getattr(_LIBC, "mallinfo2", None) if _LIBC is not None else None
    if function is None:
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return cast(Callable[[], _MallInfo2], function)


_MALLINFO2 = _mallinfo2()


def malloc_held() -> int | None:
    """Bytes the C allocator has handed out and not had back, over every arena and every block
    it mapped on its own (None where glibc's ``mallinfo2`` is missing).

    The RSS alone can under-count a load that reuses memory the process kept: glibc, once a
    large block was freed, raises its mmap threshold and serves the next ones from its arenas,
    where freed pages may stay resident; a model loaded again then reuses them and the RSS
    barely moves (``tests/observability/test_scaling_signals.py`` saw a 20 MiB model's reload
    measured near zero). What the allocator holds moves by the load's real size either way.

    (Fixing glibc's thresholds instead, so that freed blocks always go back to the OS, was tried
    and measured: a torch model's every forward pass then faulted its activations in afresh,
    25 % of its CPU in the kernel and 37 % more CPU a request, ``bench/batching.sh --only
    modelhost-torch-batched`` with ``MALLOC_MMAP_THRESHOLD_``.)
    """
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return int(info.uordblks + info.hblkhd)


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS.

    Without ``malloc_trim`` glibc keeps freed arenas, so an unloaded model's memory would stay in
    the RSS and the next load's growth would be hidden in it. Blocking: call in a worker thread.
    """
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
