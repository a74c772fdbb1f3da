"""Reading and returning the process's memory: the ground truth of model footprints."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

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


# mallopt's parameters (malloc.h) and the threshold glibc starts with.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_FIXED_THRESHOLD = 128 * 1024


def fix_allocator_thresholds() -> bool:
    """Keep glibc from moving its mmap and trim thresholds; True if it took.

    glibc starts by serving allocations over 128 KiB with their own ``mmap``, but after the first
    such block is freed it raises the threshold to that block's size (up to 32 MiB on 64 bits)
    and the trim threshold to twice that. From then on a model's large arrays come from a
    thread's arena heap, and ``malloc_trim`` does not hand back the free top of a thread's
    arena: an unloaded model's pages stay resident, the next load reuses them, and the load's
    measured growth (its footprint in the budget) comes out near zero. Fixing the thresholds
    (what ``MALLOC_MMAP_THRESHOLD_`` does) keeps every large block an ``mmap`` of its own, given
    back to the OS the moment it is freed. Call once, before models load.
    """
    if _LIBC is None or not hasattr(_LIBC, "mallopt"):
        return False
    mmap_fixed: int = _LIBC.mallopt(_M_MMAP_THRESHOLD, _FIXED_THRESHOLD)
    trim_fixed: int = _LIBC.mallopt(_M_TRIM_THRESHOLD, _FIXED_THRESHOLD)
    return mmap_fixed == 1 and trim_fixed == 1


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS.

    Without ``malloc_trim`` glibc keeps freed arenas, so an unloaded model's memory would stay in
    the RSS and the next load's growth would be hidden in it. Blocking: call in a worker thread.
    """
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
