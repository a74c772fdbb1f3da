"""Bytes held within a limit, and which to let go first: the accounting the model cache (memory)
and the artifact cache (disk) share.

``used`` is the size of the items held, ``reserved`` room promised to items on their way in.
An eviction policy (:mod:`cache.eviction`; least recently used unless told otherwise) ranks the
items held; the owner says which of them may go (not in use, not pinned) and does the evicting.
Every method is synchronous and runs on the event loop, so a check and the change after it
cannot interleave with another task's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from modelhost.cache.eviction import EvictionPolicy, LruPolicy

K = TypeVar("K", bound=Hashable)


class ByteBudget(Generic[K]):
    """Items held (key → size in bytes) against ``limit``, ranked for eviction by ``policy``."""

    def __init__(self, limit: int, policy: EvictionPolicy[K] | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.reserved = 0
        self.policy: EvictionPolicy[K] = policy if policy is not None else LruPolicy()
        self._sizes: dict[K, int] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._sizes

    def __iter__(self) -> Iterator[K]:
        return iter(self._sizes)

    def items(self) -> Iterator[tuple[K, int]]:
        return iter(self._sizes.items())

    def add(self, key: K, size: int, reload_seconds: float = 0.0) -> None:
        """Hold ``key``; getting it back once it is gone would take about ``reload_seconds``."""
        self.remove(key)
        self._sizes[key] = size
        self.used += size
        self.policy.admitted(key, size, reload_seconds)

    def use(self, key: K) -> None:
        """A request used ``key``."""
        self.policy.used(key)

    def remove(self, key: K, *, evicted: bool = False) -> int:
        """Stop holding ``key`` (``evicted``: to make room for another); returns its size, 0 if
        it was not held."""
        size = self._sizes.pop(key, None)
        if size is None:
            return 0
        self.used -= size
        if evicted:
            self.policy.evicted(key)
        else:
            self.policy.removed(key)
        return size

    def shortfall(self, need: int) -> int:
        """How many bytes held must go before ``need`` more fit (0 or less: they fit now)."""
        return self.used + self.reserved + need - self.limit

    def victims(self, shortfall: int, evictable: Callable[[K], bool]) -> list[K] | None:
        """Evictable keys, in the policy's order, that free at least ``shortfall`` bytes; None
        if all of them together cannot."""
        victims: list[K] = []
        freed = 0
        for key in self.policy.eviction_order():
            if freed >= shortfall:
                break
            if evictable(key):
                victims.append(key)
                freed += self._sizes[key]
        return victims if freed >= shortfall else None
