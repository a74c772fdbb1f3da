"""The model cache: leases, single-flight loads, a memory budget, and eviction.

A request takes a *lease* on a model version. A resident model leases at once; otherwise the
first request starts the one load that every later request for the same version waits on.
Before a load, room is made for its estimated size by evicting models that nobody leases, in
the order the eviction policy ranks them (:mod:`cache.eviction`: least recently used, or
cheapest to reload per byte); after it, the model is charged what the load measurably added to
the process. A leased model is never unloaded; a pinned one is never evicted.

All bookkeeping happens on the event loop, with no ``await`` between a check and the change it
guards, so the state machine needs no locks: UNAVAILABLE → LOADING → READY → UNLOADING →
UNAVAILABLE.

Budget accounting (bytes)::

    used      footprints of READY models
    freeing   footprints of models being unloaded (still in memory until their unload ends)
    reserved  room held for loads under way
    used + freeing + reserved <= budget, except while an under-estimated load is finishing
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

from modelhost.cache.accounting import ByteBudget
from modelhost.cache.entry import NOT_LOADED, ModelEntry, ModelState
from modelhost.cache.eviction import EvictionPolicy
from modelhost.cache.loader import LoadedModel, Loader
from modelhost.cache.snapshot import CacheSnapshot, CacheStats, ModelSnapshot
from modelhost.catalog.model_catalog import ModelRef
from modelhost.errors import (
    DeadlineExceeded,
    InsufficientMemory,
    ModelhostError,
    ModelLoadFailed,
)
from modelhost.inference.deadline import deadline_clock
from modelhost.units import format_bytes

log = logging.getLogger(__name__)

# How long a client refused for lack of memory should wait: long enough for a request holding
# the memory to finish, short enough not to idle.
_MEMORY_RETRY_AFTER = 1.0


class ModelCache:
    """Holds loaded model versions within ``budget`` bytes."""

    def __init__(
        self,
        loader: Loader,
        *,
        budget: int,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_loaded: Callable[[LoadedModel], None] | None = None,
        policy: EvictionPolicy[tuple[str, int]] | None = None,
    ) -> None:
        # READY models' footprints and the room held for loads (``used`` and ``reserved`` in
        # the accounting above), ranked for eviction by the policy.
        self._resident: ByteBudget[tuple[str, int]] = ByteBudget(budget, policy)
        self.freeing_bytes = 0
        self.stats = CacheStats()
        self._loader = loader
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._clock = clock
        self._on_loaded = on_loaded
        self._entries: dict[tuple[str, int], ModelEntry] = {}
        # Loads whose size is unknown run one at a time, so what the process grew by is theirs.
        self._size_probe = asyncio.Lock()
        self._loading: set[ModelEntry] = set()
        self._overlapped: set[ModelEntry] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def budget(self) -> int:
        return self._resident.limit

    @property
    def used_bytes(self) -> int:
        return self._resident.used

    @property
    def reserved_bytes(self) -> int:
        return self._resident.reserved

    @property
    def policy(self) -> EvictionPolicy[tuple[str, int]]:
        return self._resident.policy

    # -- leases: the request path -------------------------------------------------------------

    async def acquire(
        self, ref: ModelRef, *, ignore_backoff: bool = False, deadline: float | None = None
    ) -> ModelEntry:
        """Lease ``ref``, loading it first if needed; pair with :meth:`release`.

        ``deadline`` (on :data:`~modelhost.inference.deadline.deadline_clock`) bounds the
        wait for a load or unload: past it the caller gets DeadlineExceeded, while the load
        itself goes on for the requests after it.
        """
        entry = self._entry(ref)
        if entry.state is ModelState.READY:
            self.stats.hits += 1
            return self._lease_ready(entry)
        self.stats.misses += 1
        waiting_since: float | None = None  # when this request began to wait for its model
        try:
            while True:
                if _is_ready(entry):
                    return self._lease_ready(entry)
                if waiting_since is None:
                    waiting_since = self._clock()
                state = entry.state
                if state is ModelState.UNLOADING:
                    assert entry.transition is not None
                    await _wait(entry.transition, deadline, f"{ref} to finish unloading")
                    continue
                if state is ModelState.UNAVAILABLE:
                    wait = entry.retry_at - self._clock()
                    if entry.error is not None and wait > 0 and not ignore_backoff:
                        waiting_since = None  # refused at once: it waited for nothing
                        raise _copy(entry.error, retry_after=wait)
                    self._start_load(entry)
                # LOADING: wait for it, holding a lease so nothing evicts the model first.
                assert entry.transition is not None
                self._add_lease(entry)
                try:
                    await _wait(entry.transition, deadline, f"{ref} to load")
                except BaseException:
                    self.release(entry)
                    raise
                if _is_ready(entry):  # the load finished; our lease kept it from eviction
                    entry.last_used = self._clock()
                    self._resident.use(ref.key)
                    return entry
                self.release(entry)
                if entry.error is not None:
                    raise _copy(entry.error, retry_after=max(0.0, entry.retry_at - self._clock()))
        except InsufficientMemory:
            entry.counters.did_not_fit += 1  # a model asked for here that the budget cannot hold
            raise
        finally:
            # Requests that waited on a load (or an unload, then a load): the scaling signal.
            if waiting_since is not None:
                entry.counters.load_waits += 1
                entry.counters.load_wait_seconds += self._clock() - waiting_since

    def release(self, entry: ModelEntry) -> None:
        entry.leases -= 1
        if entry.leases == 0:
            entry.drained.set()

    def _lease_ready(self, entry: ModelEntry) -> ModelEntry:
        self._add_lease(entry)
        entry.last_used = self._clock()
        self._resident.use(entry.ref.key)
        return entry

    @staticmethod
    def _add_lease(entry: ModelEntry) -> None:
        entry.leases += 1
        entry.drained.clear()

    def _entry(self, ref: ModelRef) -> ModelEntry:
        entry = self._entries.get(ref.key)
        if entry is None:
            entry = self._entries[ref.key] = ModelEntry(ref)
        elif entry.state is ModelState.UNAVAILABLE and entry.ref != ref:
            entry.ref = ref  # the manifest changed on disk since the last load
        return entry

    # -- explicit control: the repository extension -------------------------------------------

    async def load(self, ref: ModelRef) -> None:
        """Make ``ref`` resident (an operator asked: skip the failure backoff)."""
        entry = await self.acquire(ref, ignore_backoff=True)
        self.release(entry)

    async def preload(self, ref: ModelRef) -> bool:
        """Load ``ref`` if it fits in the budget's free room, evicting nothing: a guess at what
        will be wanted (a warm restart) never pushes out a model. True if it is resident."""
        entry = self._entry(ref)
        if entry.state is ModelState.UNAVAILABLE:
            size = entry.known_size
            if size is None:
                size = await self._loader.estimate_bytes(ref)
            free = self.budget - self.used_bytes - self.freeing_bytes - self.reserved_bytes
            if entry.state is not ModelState.UNAVAILABLE or size > free:
                return _is_ready(entry)
            await self.load(ref)
        return _is_ready(entry)

    async def unload(self, ref: ModelRef, reason: str = "unloaded") -> None:
        """Unload ``ref`` once the requests holding it are done."""
        entry = self._entries.get(ref.key)
        while entry is not None:
            if entry.state is ModelState.READY:
                self._begin_unload(entry, reason)
            if entry.state is ModelState.UNAVAILABLE:
                return
            assert entry.transition is not None
            if entry.state is ModelState.UNLOADING:
                await asyncio.shield(entry.transition)
                return
            await asyncio.shield(entry.transition)  # a load: unload what it brings

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def entry(self, name: str, version: int) -> ModelEntry | None:
        return self._entries.get((name, version))

    def seconds_since_use(self, entry: ModelEntry) -> float | None:
        """How long ago a request last used ``entry`` (None: never, since this process began)."""
        return self._clock() - entry.last_used if entry.last_used else None

    def status(self, name: str, version: int) -> tuple[ModelState, str]:
        """A version's state and the reason for it (never seen: UNAVAILABLE, "not loaded")."""
        seen = self.describe(name, version)
        return (
            (seen.state, seen.reason) if seen is not None else (ModelState.UNAVAILABLE, NOT_LOADED)
        )

    def describe(self, name: str, version: int) -> ModelSnapshot | None:
        """How the cache holds a version now (None: it never saw it)."""
        entry = self._entries.get((name, version))
        return self._describe(entry) if entry is not None else None

    def snapshot(self) -> CacheSnapshot:
        """The budget, the counters and every version's state, as they are now."""
        return CacheSnapshot(
            budget_bytes=self.budget,
            used_bytes=self.used_bytes,
            freeing_bytes=self.freeing_bytes,
            reserved_bytes=self.reserved_bytes,
            stats=replace(self.stats),
            models=tuple(self._describe(entry) for entry in self._entries.values()),
        )

    def _describe(self, entry: ModelEntry) -> ModelSnapshot:
        return ModelSnapshot(
            name=entry.name,
            version=entry.version,
            state=entry.state,
            reason=entry.reason,
            footprint_bytes=entry.footprint,
            measured_bytes=entry.known_size,
            leases=entry.leases,
            pinned=entry.pinned,
            idle_seconds=self.seconds_since_use(entry),
            counters=replace(entry.counters),
        )

    def unload_idle(self, idle_seconds: float) -> int:
        """Unload models nobody has used for ``idle_seconds``; returns how many."""
        now = self._clock()
        idle = [
            entry
            for entry in self._resident_entries()
            if entry.leases == 0 and not entry.pinned and now - entry.last_used >= idle_seconds
        ]
        for entry in idle:
            self._begin_unload(entry, f"unloaded after {idle_seconds:g}s idle")
        return len(idle)

    async def close(self) -> None:
        """Unload everything (server shutdown)."""
        await asyncio.gather(*(self.unload(entry.ref) for entry in self.entries()))

    # -- loading --------------------------------------------------------------------------------

    def _start_load(self, entry: ModelEntry) -> None:
        entry.state = ModelState.LOADING
        entry.reason = "loading"
        entry.transition = asyncio.get_running_loop().create_future()
        self._spawn(self._load(entry))

    async def _load(self, entry: ModelEntry) -> None:
        ref = entry.ref
        reserved = 0
        model: LoadedModel | None = None
        try:
            size_known = entry.known_size is not None or ref.manifest.memory_bytes > 0
            estimate = (
                entry.known_size
                if entry.known_size is not None
                else await self._loader.estimate_bytes(ref)
            )
            await self._reserve(entry, estimate)
            reserved = estimate
            async with nullcontext() if size_known else self._size_probe:
                model, overlapped = await self._load_measured(entry)
            footprint, trusted = _footprint(model, estimate, overlapped, entry.known_size)
            if trusted:
                entry.known_size = footprint
            if footprint > reserved:  # bigger than estimated: evict idle models to fit it now
                await self._reserve(entry, footprint - reserved, held=reserved)
                reserved = footprint
        except BaseException as exc:
            self._resident.reserved -= reserved
            if model is not None:
                await self._loader.unload(model)
            self._fail_load(entry, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._resident.reserved -= reserved
        entry.model, entry.footprint = model, footprint
        entry.state, entry.reason, entry.error, entry.failures = ModelState.READY, "", None, 0
        entry.last_used = self._clock()
        self._resident.add(ref.key, footprint, _reload_seconds(model))
        self.stats.loads += 1
        entry.counters.loads += 1
        if self._on_loaded is not None:
            self._on_loaded(model)
        self._finish_transition(entry)

    async def _load_measured(self, entry: ModelEntry) -> tuple[LoadedModel, bool]:
        """Load, and say whether another load overlapped it (its growth is then not its own)."""
        self._loading.add(entry)
        if len(self._loading) > 1:
            self._overlapped.update(self._loading)
        try:
            model = await self._loader.load(entry.ref)
        finally:
            self._loading.discard(entry)
            overlapped = entry in self._overlapped
            self._overlapped.discard(entry)
        return model, overlapped

    def _fail_load(self, entry: ModelEntry, exc: BaseException) -> None:
        error = _as_load_error(entry.ref, exc)
        entry.state, entry.model, entry.error = ModelState.UNAVAILABLE, None, error
        entry.reason = error.message
        if isinstance(error, InsufficientMemory):
            entry.retry_at = self._clock()  # not the model's fault: try again when asked
        else:
            entry.failures += 1
            self.stats.load_failures += 1
            backoff = min(self._retry_max, self._retry_initial * 2 ** (entry.failures - 1))
            entry.retry_at = self._clock() + backoff
            log.warning("loading %s failed (%d in a row): %s", entry.ref, entry.failures, error)
        self._finish_transition(entry)

    async def _reserve(self, entry: ModelEntry, need: int, held: int = 0) -> None:
        """Hold ``need`` more bytes of the budget (``held`` being already held for the same
        load), evicting idle models and waiting out their unloads to make room; raise
        InsufficientMemory if even that can't."""
        while True:
            # Room being freed by unloads under way is not free yet.
            if self._resident.shortfall(need + self.freeing_bytes) <= 0:
                self._resident.reserved += need
                return
            shortfall = self._resident.shortfall(need)
            if shortfall > 0:
                keys = self._resident.victims(
                    shortfall, lambda key: _evictable(self._entries[key], entry)
                )
                if keys is None:
                    raise self._no_room(entry, need, held)
                for victim in (self._entries[key] for key in keys):
                    self.stats.evictions += 1
                    victim.counters.evictions += 1
                    self._begin_unload(
                        victim, f"evicted to make room for {entry.ref}", evicted=True
                    )
            unloading = [
                e.transition
                for e in self._entries.values()
                if e.state is ModelState.UNLOADING and e.transition is not None
            ]
            if not unloading:  # nothing left to wait for: the accounting says no
                raise self._no_room(entry, need, held)
            await asyncio.wait(
                [asyncio.shield(t) for t in unloading], return_when=asyncio.FIRST_COMPLETED
            )

    def _resident_entries(self) -> list[ModelEntry]:
        return [self._entries[key] for key in self._resident]

    def _no_room(self, entry: ModelEntry, need: int, held: int) -> InsufficientMemory:
        in_use = sum(e.footprint for e in self._resident_entries() if e.leases or e.pinned)
        free = self.budget - self.used_bytes - self.freeing_bytes - self.reserved_bytes + held
        others_loading = self.reserved_bytes - held
        return InsufficientMemory(
            f"model {entry.ref} needs {format_bytes(need + held)} but only "
            f"{format_bytes(max(0, free))} of the {format_bytes(self.budget)} memory budget is "
            f"free; {format_bytes(in_use)} is held by models in use or pinned and "
            f"{format_bytes(others_loading)} by other loads under way",
            retry_after=_MEMORY_RETRY_AFTER,
        )

    # -- unloading ------------------------------------------------------------------------------

    def _begin_unload(self, entry: ModelEntry, reason: str, *, evicted: bool = False) -> None:
        entry.state, entry.reason = ModelState.UNLOADING, reason
        entry.transition = asyncio.get_running_loop().create_future()
        self._resident.remove(entry.ref.key, evicted=evicted)
        self.freeing_bytes += entry.footprint
        self._spawn(self._unload(entry))

    async def _unload(self, entry: ModelEntry) -> None:
        try:
            await entry.drained.wait()
            model, entry.model = entry.model, None
            if model is not None:
                await self._loader.unload(model)
        except Exception:
            log.exception("unloading %s failed; its memory may not have been returned", entry.ref)
        finally:
            self.freeing_bytes -= entry.footprint
            entry.footprint = 0
            entry.state = ModelState.UNAVAILABLE
            self.stats.unloads += 1
            self._finish_transition(entry)
            log.info("%s: %s", entry.ref, entry.reason)

    # -- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def _finish_transition(entry: ModelEntry) -> None:
        if entry.transition is not None and not entry.transition.done():
            entry.transition.set_result(None)
        entry.transition = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _wait(transition: asyncio.Future[None], deadline: float | None, what: str) -> None:
    """Wait for a load or unload without cancelling it, at most until ``deadline``."""
    if deadline is None:
        await asyncio.shield(transition)
        return
    remaining = deadline - deadline_clock()
    try:
        await asyncio.wait_for(asyncio.shield(transition), max(remaining, 0))
    except TimeoutError:
        raise DeadlineExceeded(f"the request's deadline passed while waiting for {what}") from None


def _evictable(candidate: ModelEntry, loading: ModelEntry) -> bool:
    return candidate is not loading and not candidate.leases and not candidate.pinned


def _is_ready(entry: ModelEntry) -> bool:
    # A function, not an inline check: the state changes across the awaits before it.
    return entry.state is ModelState.READY


def _reload_seconds(model: LoadedModel) -> float:
    """What undoing an eviction of ``model`` would cost: its load without the download, since
    the artifact cache keeps its files on disk."""
    return max(0.0, model.load_seconds - model.phases.get("download", 0.0))


def _footprint(
    model: LoadedModel, estimate: int, overlapped: bool, known: int | None
) -> tuple[int, bool]:
    """What to charge a loaded model, and whether that number is a trustworthy measurement.

    A measured growth can hide memory (a load that reuses pages the process kept from an
    earlier unload adds little to the RSS) but a lone load cannot inflate it, so a version
    measured before is never charged less than its largest clean measurement: the same files
    loaded by the same runtime take the same memory, whatever the RSS showed this time.
    """
    if model.reported_bytes is not None:
        return model.reported_bytes, True
    if not overlapped:
        return max(model.measured_bytes, known or 0), True
    return max(estimate, 0), False


def _as_load_error(ref: ModelRef, exc: BaseException) -> ModelhostError:
    if isinstance(exc, InsufficientMemory):
        return exc
    if isinstance(exc, ModelhostError):
        return type(exc)(f"model {ref} failed to load: {exc.message}")
    return ModelLoadFailed(f"model {ref} failed to load: {type(exc).__name__}: {exc}")


def _copy(error: ModelhostError, *, retry_after: float) -> ModelhostError:
    """A fresh exception per waiter: one instance raised in many tasks tangles tracebacks."""
    return type(error)(error.message, retry_after=max(retry_after, 0.001))
