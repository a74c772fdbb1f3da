"""The LRU + budget accounting the model cache and the artifact cache share."""

from __future__ import annotations

from modelhost.budget import LruBudget


def test_victims_are_the_least_recently_used_that_may_go() -> None:
    budget: LruBudget[str] = LruBudget(100)
    for key, size in (("a", 30), ("b", 30), ("c", 30)):
        budget.add(key, size)
    assert budget.used == 90 and list(budget) == ["a", "b", "c"]
    budget.touch("a")
    assert list(budget) == ["b", "c", "a"]
    assert budget.shortfall(10) == 0  # fits exactly
    assert budget.shortfall(40) == 30
    assert budget.victims(30, lambda key: True) == ["b"]
    assert budget.victims(31, lambda key: True) == ["b", "c"]
    assert budget.victims(31, lambda key: key != "c") == ["b", "a"]
    assert budget.victims(61, lambda key: key != "c") is None  # all the others free only 60
    assert budget.victims(0, lambda key: False) == []


def test_reserved_room_counts_against_the_limit() -> None:
    budget: LruBudget[int] = LruBudget(100)
    budget.add(1, 50)
    budget.reserved += 40
    assert budget.shortfall(20) == 10
    budget.reserved -= 40
    assert budget.remove(1) == 50 and budget.used == 0 and 1 not in budget
    assert budget.remove(1) == 0  # removing what is not held changes nothing


def test_adding_a_held_key_again_replaces_its_size() -> None:
    budget: LruBudget[str] = LruBudget(100)
    budget.add("a", 10)
    budget.add("b", 10)
    budget.add("a", 25)
    assert budget.used == 35 and list(budget) == ["b", "a"]
    assert list(budget.items()) == [("b", 10), ("a", 25)]
