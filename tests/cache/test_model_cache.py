"""The cache's state machine in-process, with a loader that is a real object whose loads the
test controls: races that are hard to time through HTTP."""

from __future__ import annotations

import asyncio

import pytest

from modelhost.cache.entry import ModelState
from modelhost.cache.model_cache import ModelCache
from modelhost.catalog.model_catalog import ModelRef
from modelhost.errors import InsufficientMemory, ModelLoadFailed
from tests.cache.scripted import MB, ScriptedLoader, ref, run


def test_concurrent_acquires_share_one_load_and_cancelled_waiters_let_go() -> None:
    loader = ScriptedLoader()
    loader.gates["m"] = asyncio.Event()

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB)
        model = ref("m")
        waiters = [asyncio.create_task(cache.acquire(model)) for _ in range(20)]
        await asyncio.sleep(0.01)
        waiters[0].cancel()  # a client that hangs up mid-load
        await asyncio.sleep(0.01)
        loader.gates["m"].set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        entries = results[1:]
        assert all(e is entries[0] for e in entries)
        entry = cache.entry("m", 1)
        assert entry is not None and entry.state is ModelState.READY and entry.leases == 19
        for e in entries:
            cache.release(e)  # type: ignore[arg-type]
        assert entry.leases == 0 and loader.loads == ["m"]

    run(scenario)


def test_unload_requested_during_a_load_unloads_once_it_is_ready() -> None:
    loader = ScriptedLoader()
    loader.gates["m"] = asyncio.Event()

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB)
        loading = asyncio.create_task(cache.load(ref("m")))
        await asyncio.sleep(0.01)
        unloading = asyncio.create_task(cache.unload(ref("m")))
        await asyncio.sleep(0.01)
        assert not unloading.done()
        loader.gates["m"].set()
        await asyncio.gather(loading, unloading)
        entry = cache.entry("m", 1)
        assert entry is not None and entry.state is ModelState.UNAVAILABLE
        assert loader.unloads == ["m"] and cache.used_bytes == 0 and cache.freeing_bytes == 0

    run(scenario)


def test_load_bigger_than_estimated_with_nothing_evictable_is_undone() -> None:
    loader = ScriptedLoader()
    loader.sizes = {"busy": 60 * MB, "surprise": 70 * MB}

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB)
        held = await cache.acquire(ref("busy"))  # in use: cannot be evicted
        with pytest.raises(InsufficientMemory, match="needs 70.0 MiB"):
            await cache.acquire(ref("surprise"))  # estimated 1 MiB, measured 70 MiB
        assert loader.unloads == ["surprise"]
        assert cache.used_bytes == 60 * MB and cache.reserved_bytes == 0
        # Its size is now known, so the next try is refused before loading anything.
        with pytest.raises(InsufficientMemory):
            await cache.acquire(ref("surprise"))
        assert loader.loads == ["busy", "surprise"]
        cache.release(held)
        entry = await cache.acquire(ref("surprise"))  # busy is idle now: evicted, room made
        assert entry.state is ModelState.READY and loader.unloads == ["surprise", "busy"]
        assert cache.used_bytes == 70 * MB

    run(scenario)


def test_failed_loads_back_off_exponentially() -> None:
    loader = ScriptedLoader()
    loader.failures["m"] = ValueError("bad weights")
    now = [100.0]

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB, retry_initial=2, clock=lambda: now[0])
        with pytest.raises(ModelLoadFailed, match="bad weights") as first:
            await cache.acquire(ref("m"))
        assert first.value.retry_after == pytest.approx(2)
        now[0] += 1
        with pytest.raises(ModelLoadFailed) as second:
            await cache.acquire(ref("m"))
        assert second.value.retry_after == pytest.approx(1) and len(loader.loads) == 1
        now[0] += 1.5
        with pytest.raises(ModelLoadFailed) as third:
            await cache.acquire(ref("m"))
        assert third.value.retry_after == pytest.approx(4) and len(loader.loads) == 2
        del loader.failures["m"]
        now[0] += 4
        entry = await cache.acquire(ref("m"))
        assert entry.state is ModelState.READY and entry.failures == 0

    run(scenario)


def test_overlapping_unknown_and_known_loads_keep_estimates_not_mixed_growth() -> None:
    loader = ScriptedLoader()
    loader.sizes = {"known": 30 * MB, "unknown": 20 * MB}
    loader.gates["known"] = asyncio.Event()

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB)
        known = asyncio.create_task(cache.acquire(ref("known", hint_mb=25)))
        await asyncio.sleep(0.01)
        unknown = asyncio.create_task(cache.acquire(ref("unknown")))
        await asyncio.sleep(0.01)
        loader.gates["known"].set()
        await asyncio.gather(known, unknown)
        # Both overlapped: neither growth can be told apart, so each keeps its estimate and
        # nothing is recorded as measured.
        entries = {e.name: e for e in cache.entries()}
        assert entries["known"].footprint == 25 * MB
        assert entries["unknown"].footprint == 1 * MB
        assert entries["known"].known_size is None and entries["unknown"].known_size is None

    run(scenario)


def test_pinned_and_leased_models_are_not_eviction_candidates() -> None:
    loader = ScriptedLoader()
    loader.sizes = {"pinned": 40 * MB, "leased": 40 * MB, "new": 40 * MB}

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB)
        pinned = ModelRef(
            "pinned", 1, ref("pinned", 40).manifest.model_copy(update={"pinned": True})
        )
        cache.release(await cache.acquire(pinned))
        await cache.acquire(ref("leased", 40))
        with pytest.raises(InsufficientMemory, match="80.0 MiB is held by models in use or pinned"):
            await cache.acquire(ref("new", 40))
        assert loader.unloads == []

    run(scenario)
