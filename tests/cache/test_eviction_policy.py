"""Eviction policies: their ranking alone, then inside the cache with a scripted loader, where
every guarantee must still hold (leased and pinned models stay, the budget holds, one load per
model)."""

from __future__ import annotations

import asyncio

import pytest

from modelhost.cache.entry import ModelState
from modelhost.cache.eviction import CostAwarePolicy, LruPolicy, PolicyName, make_policy
from modelhost.cache.model_cache import ModelCache
from modelhost.errors import InsufficientMemory
from tests.cache.scripted import MB, ScriptedLoader, ref, run


def test_lru_ranks_by_last_use() -> None:
    policy: LruPolicy[str] = LruPolicy()
    for key in ("a", "b", "c"):
        policy.admitted(key, MB, 1.0)
    policy.used("a")
    assert policy.eviction_order() == ["b", "c", "a"]
    policy.evicted("b")
    policy.removed("c")
    assert policy.eviction_order() == ["a"]


def test_cost_aware_keeps_what_is_dear_to_reload_per_byte() -> None:
    now = [0.0]
    policy: CostAwarePolicy[str] = CostAwarePolicy(clock=lambda: now[0])
    policy.admitted("big-quick", 600 * MB, 0.2)  # 3000 MB per second of reload
    policy.admitted("small-slow", 30 * MB, 8.0)
    policy.admitted("mid", 100 * MB, 1.0)
    for key in ("big-quick", "small-slow", "mid"):
        policy.used(key)
    assert policy.eviction_order() == ["big-quick", "mid", "small-slow"]
    # Requests weigh in: ten times the traffic outweighs a cheap reload ten times over.
    for _ in range(200):
        policy.used("big-quick")
    assert policy.eviction_order()[0] == "mid"


def test_cost_aware_ages_out_what_was_valuable_once_and_remembers_counts() -> None:
    now = [0.0]
    policy: CostAwarePolicy[str] = CostAwarePolicy(half_life_seconds=60, clock=lambda: now[0])
    policy.admitted("old-favourite", 10 * MB, 5.0)
    for _ in range(20):
        policy.used("old-favourite")
    # Then traffic moves on: new models come and go, each evicted one raising the floor.
    for i in range(60):
        now[0] += 10
        key = f"new-{i}"
        policy.admitted(key, 10 * MB, 5.0)
        policy.used(key)
        policy.used(key)
        victim = policy.eviction_order()[0]
        policy.evicted(victim)
        if victim == "old-favourite":
            break
    else:
        pytest.fail("a model nobody uses any more was never evicted")
    # Its count survives the eviction: back in memory, it ranks above a newcomer of the same
    # price with one request.
    policy.admitted("old-favourite", 10 * MB, 5.0)
    policy.used("old-favourite")
    policy.admitted("stranger", 10 * MB, 5.0)
    policy.used("stranger")
    order = policy.eviction_order()
    assert order.index("stranger") < order.index("old-favourite")
    assert policy.priority("stranger") is not None and policy.priority("gone") is None


def _two_resident_then_a_third(policy_name: PolicyName) -> list[str]:
    """big-quick (60 MB, 0.1 s) and small-slow (30 MB, 6 s) resident, small-slow the least
    recently used; then a 40 MB model needs room in 100 MB. Returns what was unloaded."""
    loader = ScriptedLoader()
    loader.sizes = {"big-quick": 60 * MB, "small-slow": 30 * MB, "new": 40 * MB}
    loader.seconds = {"big-quick": 0.1, "small-slow": 6.0, "new": 1.0}

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB, policy=make_policy(policy_name))
        cache.release(await cache.acquire(ref("small-slow", 30)))
        cache.release(await cache.acquire(ref("big-quick", 60)))
        cache.release(await cache.acquire(ref("new", 40)))
        assert cache.used_bytes + cache.freeing_bytes <= cache.budget

    run(scenario)
    return loader.unloads


def test_lru_evicts_the_slow_model_cost_aware_the_quick_one() -> None:
    assert _two_resident_then_a_third("lru") == ["small-slow"]
    assert _two_resident_then_a_third("cost-aware") == ["big-quick"]


def test_cost_aware_never_evicts_leased_or_pinned_and_the_budget_holds() -> None:
    loader = ScriptedLoader()
    loader.sizes = {"pinned": 30 * MB, "leased": 30 * MB, "idle": 30 * MB, "new": 35 * MB}
    # The pinned and leased models are the cheapest to reload: first in line, yet untouchable.
    loader.seconds = {"pinned": 0.01, "leased": 0.01, "idle": 50.0, "new": 1.0}

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB, policy=CostAwarePolicy())
        cache.release(await cache.acquire(ref("pinned", 30, pinned=True)))
        held = await cache.acquire(ref("leased", 30))
        cache.release(await cache.acquire(ref("idle", 30)))
        entry = await cache.acquire(ref("new", 35))
        assert loader.unloads == ["idle"]
        assert cache.used_bytes + cache.freeing_bytes + cache.reserved_bytes <= cache.budget
        with pytest.raises(InsufficientMemory):
            await cache.acquire(ref("another", 40))  # only pinned and leased models are left
        assert loader.unloads == ["idle"]
        cache.release(entry)
        cache.release(held)

    run(scenario)


def test_cost_aware_still_loads_once_for_many_waiters() -> None:
    loader = ScriptedLoader()
    loader.gates["m"] = asyncio.Event()

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB, policy=CostAwarePolicy())
        waiters = [asyncio.create_task(cache.acquire(ref("m"))) for _ in range(20)]
        await asyncio.sleep(0.01)
        loader.gates["m"].set()
        entries = await asyncio.gather(*waiters)
        assert loader.loads == ["m"] and all(e is entries[0] for e in entries)
        assert entries[0].state is ModelState.READY
        for entry in entries:
            cache.release(entry)

    run(scenario)


def test_reload_cost_leaves_out_the_download_the_disk_tier_saves() -> None:
    loader = ScriptedLoader()
    loader.sizes = {"from-s3": 40 * MB, "from-disk": 40 * MB, "new": 40 * MB}
    # 10 s to load from S3, of which 9.5 s downloading: a reload from the artifact cache on
    # disk costs 0.5 s, less than the other model's 2 s.
    loader.seconds = {"from-s3": 10.0, "from-disk": 2.0, "new": 1.0}
    loader.download_seconds = {"from-s3": 9.5}

    async def scenario() -> None:
        cache = ModelCache(loader, budget=100 * MB, policy=CostAwarePolicy())
        cache.release(await cache.acquire(ref("from-disk", 40)))
        cache.release(await cache.acquire(ref("from-s3", 40)))
        cache.release(await cache.acquire(ref("new", 40)))

    run(scenario)
    assert loader.unloads == ["from-s3"]
