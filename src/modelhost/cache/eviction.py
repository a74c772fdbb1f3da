"""Eviction policies: which idle resident models go first when a load needs room.

The cache keeps the budget and the guarantees (a leased or pinned model is never a victim; the
budget holds; one load per model); a policy only ranks. The cache tells it what happens to each
resident key and asks it for an order when it must free bytes:

- :class:`LruPolicy` (``lru``): least recently used first. Blind to what an eviction costs: it
  evicts a 4 GB model that takes 40 s to load as readily as a 40 MB one that takes 0.2 s.
- :class:`CostAwarePolicy` (``cost-aware``): GreedyDual-Size-Frequency (Cherkasova, 1998). A
  model's priority is ``L + requests × reload seconds / bytes``: what keeping it saves per
  byte it holds. The lowest goes first, and ``L`` rises to the priority of each model
  evicted, so a model that was valuable once but is no longer used ages out behind the ones in
  use now. Requests are counted with a half-life (ten minutes: the request *rate* of late, not
  the count since start), and the count survives an eviction: a popular model evicted under a
  burst comes back with its history.

"Reload seconds" is what the cache measured the model's last load to take, less the download:
the artifact cache keeps a model's files on disk after it leaves memory (the disk tier), so
undoing an eviction costs a reload from disk, not from the remote store.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, TypeVar

PolicyName = Literal["lru", "cost-aware"]
Key = TypeVar("Key", bound=Hashable)


class EvictionPolicy(ABC, Generic[Key]):
    """Ranks resident keys for eviction; told of every change to what is resident.

    Single-threaded (the cache calls it on the event loop). Every key passed to :meth:`used`,
    :meth:`evicted` or :meth:`removed` was passed to :meth:`admitted` first.
    """

    name: ClassVar[PolicyName]

    @abstractmethod
    def admitted(self, key: Key, size: int, reload_seconds: float) -> None:
        """``key`` became resident, holding ``size`` bytes; reloading it would take about
        ``reload_seconds``. (The requests that waited for the load each report a use.)"""

    @abstractmethod
    def used(self, key: Key) -> None:
        """A request used the resident ``key``."""

    @abstractmethod
    def evicted(self, key: Key) -> None:
        """``key`` left memory to make room for another (the policy may age by it)."""

    @abstractmethod
    def removed(self, key: Key) -> None:
        """``key`` left memory for another reason (unloaded on request, idle, shut down)."""

    @abstractmethod
    def eviction_order(self) -> list[Key]:
        """Every resident key, the first to evict first."""


class LruPolicy(EvictionPolicy[Key]):
    """Least recently used first."""

    name = "lru"

    def __init__(self) -> None:
        self._order: OrderedDict[Key, None] = OrderedDict()  # oldest first

    def admitted(self, key: Key, size: int, reload_seconds: float) -> None:
        self._order[key] = None
        self._order.move_to_end(key)

    def used(self, key: Key) -> None:
        self._order.move_to_end(key)

    def evicted(self, key: Key) -> None:
        self._order.pop(key, None)

    def removed(self, key: Key) -> None:
        self._order.pop(key, None)

    def eviction_order(self) -> list[Key]:
        return list(self._order)


@dataclass(slots=True)
class _History:
    size: int
    reload_seconds: float
    requests: float = 0.0  # decayed count
    counted_at: float = 0.0  # when ``requests`` was last brought up to date
    priority: float = 0.0
    resident: bool = False


class CostAwarePolicy(EvictionPolicy[Key]):
    """GreedyDual-Size-Frequency with a request count that decays and survives evictions."""

    name = "cost-aware"

    # A request counts half as much this many seconds later.
    DEFAULT_HALF_LIFE_SECONDS = 600.0

    def __init__(
        self,
        half_life_seconds: float = DEFAULT_HALF_LIFE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._half_life = half_life_seconds
        self._now = clock
        self._inflation = 0.0  # GDSF's "L": the priority of the last model evicted
        self._history: dict[Key, _History] = {}

    def admitted(self, key: Key, size: int, reload_seconds: float) -> None:
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = _History(size, reload_seconds)
        history.size, history.reload_seconds = max(size, 1), max(reload_seconds, 0.0)
        history.resident = True
        self._count(history, 0.0)

    def used(self, key: Key) -> None:
        history = self._history.get(key)
        if history is not None and history.resident:
            self._count(history, 1.0)

    def evicted(self, key: Key) -> None:
        history = self._history.get(key)
        if history is not None and history.resident:
            history.resident = False
            # Inflation: what is resident from now on must be worth more than what just left.
            self._inflation = max(self._inflation, history.priority)

    def removed(self, key: Key) -> None:
        history = self._history.get(key)
        if history is not None:
            history.resident = False

    def eviction_order(self) -> list[Key]:
        resident = [(h.priority, key) for key, h in self._history.items() if h.resident]
        resident.sort(key=lambda pair: pair[0])
        return [key for _, key in resident]

    def priority(self, key: Key) -> float | None:
        """``key``'s priority now (None: not resident), for status pages and tests."""
        history = self._history.get(key)
        return history.priority if history is not None and history.resident else None

    def _count(self, history: _History, requests: float) -> None:
        """Add ``requests`` to the decayed count, and price the model anew."""
        now = self._now()
        elapsed = max(0.0, now - history.counted_at)
        history.requests = history.requests * 0.5 ** (elapsed / self._half_life) + requests
        history.counted_at = now
        value = history.requests * history.reload_seconds / history.size
        history.priority = self._inflation + value


def make_policy(name: PolicyName) -> EvictionPolicy[Key]:
    """The policy ``--eviction-policy`` names."""
    if name == CostAwarePolicy.name:
        return CostAwarePolicy()
    return LruPolicy()
