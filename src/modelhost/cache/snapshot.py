"""The model cache as it is at one moment: what the cache route, the metrics and the EMF lines
read, so none of them reaches into the cache's own bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass

from modelhost.cache.entry import ModelCounters, ModelState


@dataclass(slots=True)
class CacheStats:
    """Counters since start (the cache counts in its own; a snapshot holds a copy)."""

    hits: int = 0
    misses: int = 0
    loads: int = 0
    load_failures: int = 0
    evictions: int = 0
    unloads: int = 0


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    """One model version the cache has seen."""

    name: str
    version: int
    state: ModelState
    reason: str
    footprint_bytes: int  # charged against the budget while resident
    measured_bytes: int | None  # the footprint measured at the last clean load
    leases: int  # requests using it, or waiting for its load
    pinned: bool
    idle_seconds: float | None  # since a request last used it (None: never, in this process)
    counters: ModelCounters


@dataclass(frozen=True, slots=True)
class CacheSnapshot:
    """The budget and what holds it (bytes), the counters, and every model version."""

    budget_bytes: int
    used_bytes: int
    freeing_bytes: int
    reserved_bytes: int
    stats: CacheStats
    models: tuple[ModelSnapshot, ...]

    @property
    def resident_bytes(self) -> int:
        """Memory models hold now: the resident ones and those still being unloaded."""
        return self.used_bytes + self.freeing_bytes
