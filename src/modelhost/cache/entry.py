"""The cache's record of one model version: its state, its lease count, its footprint."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from modelhost.cache.loader import LoadedModel
from modelhost.catalog.model_catalog import ModelRef
from modelhost.errors import ModelhostError

# The reason a version the cache holds nothing of is UNAVAILABLE.
NOT_LOADED = "not loaded"


class ModelState(StrEnum):
    """The model repository extension's states."""

    UNAVAILABLE = "UNAVAILABLE"
    LOADING = "LOADING"
    READY = "READY"
    UNLOADING = "UNLOADING"


@dataclass(slots=True)
class ModelCounters:
    """One model version's churn on this replica since start: the signals for scaling by model
    (docs/routing.md). Kept across its loads and unloads."""

    loads: int = 0
    evictions: int = 0  # made room for another model
    load_waits: int = 0  # requests that found it not resident and waited for it
    load_wait_seconds: float = 0.0  # how long those requests waited, together
    did_not_fit: int = 0  # requests refused: the budget could not hold it


@dataclass(eq=False)
class ModelEntry:
    """Mutated only on the event loop, so a state check and the change after it are atomic."""

    ref: ModelRef
    state: ModelState = ModelState.UNAVAILABLE
    reason: str = NOT_LOADED
    model: LoadedModel | None = None
    footprint: int = 0  # bytes charged against the budget while resident
    known_size: int | None = None  # the footprint measured at the last clean load
    leases: int = 0  # requests using the model, or waiting for its load to finish
    last_used: float = 0.0
    failures: int = 0  # consecutive failed loads, for the retry backoff
    retry_at: float = 0.0  # no new load attempt before this (monotonic seconds)
    error: ModelhostError | None = None  # why the last load failed
    transition: asyncio.Future[None] | None = None  # set while LOADING or UNLOADING
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    counters: ModelCounters = field(default_factory=ModelCounters)

    def __post_init__(self) -> None:
        self.drained.set()

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def version(self) -> int:
        return self.ref.version

    @property
    def pinned(self) -> bool:
        return self.ref.manifest.pinned
