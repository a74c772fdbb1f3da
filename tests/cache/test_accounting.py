"""The byte accounting the model cache and the artifact cache share."""

from __future__ import annotations

from modelhost.cache.accounting import ByteBudget
from modelhost.cache.eviction import CostAwarePolicy


def test_victims_go_in_the_policys_order_and_only_if_they_may() -> None:
    budget: ByteBudget[str] = ByteBudget(100)  # least recently used first
    for key in ("a", "b", "c"):
        budget.add(key, 30)
    assert budget.used == 90 and list(budget) == ["a", "b", "c"]
    budget.use("a")
    assert budget.shortfall(10) == 0  # fits exactly
    assert budget.shortfall(40) == 30
    assert budget.victims(30, lambda key: True) == ["b"]
    assert budget.victims(31, lambda key: True) == ["b", "c"]
    assert budget.victims(31, lambda key: key != "c") == ["b", "a"]
    assert budget.victims(61, lambda key: key != "c") is None  # the others free only 60
    assert budget.victims(0, lambda key: False) == []


def test_reserved_room_counts_against_the_limit() -> None:
    budget: ByteBudget[int] = ByteBudget(100)
    budget.add(1, 50)
    budget.reserved += 40
    assert budget.shortfall(20) == 10
    budget.reserved -= 40
    assert budget.remove(1) == 50 and budget.used == 0 and 1 not in budget
    assert budget.remove(1) == 0  # removing what is not held changes nothing
    assert budget.policy.eviction_order() == []


def test_adding_a_held_key_again_replaces_its_size() -> None:
    budget: ByteBudget[str] = ByteBudget(100)
    budget.add("a", 10)
    budget.add("b", 10)
    budget.add("a", 25)
    assert budget.used == 35 and dict(budget.items()) == {"a": 25, "b": 10}
    assert budget.victims(1, lambda key: True) == ["b"]


def test_a_costly_item_outlives_a_cheap_one_under_a_cost_aware_policy() -> None:
    budget: ByteBudget[str] = ByteBudget(100, CostAwarePolicy(clock=lambda: 0.0))
    budget.add("slow", 40, reload_seconds=30.0)
    budget.add("fast", 40, reload_seconds=0.1)
    budget.use("slow")
    budget.use("fast")
    assert budget.victims(30, lambda key: True) == ["fast"]
