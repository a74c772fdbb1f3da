"""Bytes held within a limit, least recently used first: the accounting the model cache (memory)
and the artifact cache (disk) share.

``used`` is the size of the items held, ``reserved`` room promised to items on their way in.
The owner decides which items may be evicted (not in use, not pinned) and does the evicting;
this only keeps the numbers and the order. Every method is synchronous and called on the event
loop, so a check and the change after it cannot interleave with another task's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class LruBudget(Generic[K]):
    """Items (key → size in bytes) in least-recently-used order, with what they use and what
    is reserved against ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.reserved = 0
        self._sizes: OrderedDict[K, int] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._sizes

    def __iter__(self) -> Iterator[K]:
        """The keys, least recently used first."""
        return iter(self._sizes)

    def items(self) -> Iterator[tuple[K, int]]:
        return iter(self._sizes.items())

    def add(self, key: K, size: int) -> None:
        """Hold ``key`` (as the most recently used item)."""
        self.used += size - self._sizes.get(key, 0)
        self._sizes[key] = size
        self._sizes.move_to_end(key)

    def touch(self, key: K) -> None:
        """Mark ``key`` used now."""
        self._sizes.move_to_end(key)

    def remove(self, key: K) -> int:
        """Stop holding ``key``; returns its size (0 if it was not held)."""
        size = self._sizes.pop(key, 0)
        self.used -= size
        return size

    def shortfall(self, need: int) -> int:
        """How many bytes held must go before ``need`` more fit (0 or less: they fit)."""
        return self.used + self.reserved + need - self.limit

    def victims(self, shortfall: int, evictable: Callable[[K], bool]) -> list[K] | None:
        """The least recently used evictable keys that free at least ``shortfall`` bytes, or
        None if all of them together cannot."""
        victims: list[K] = []
        freed = 0
        for key, size in self._sizes.items():
            if freed >= shortfall:
                break
            if evictable(key):
                victims.append(key)
                freed += size
        return victims if freed >= shortfall else None
