"""Turning a model version in the store into loaded runtime instances, and back.

The loader measures what each load added to the process, so the cache can charge the model's
real footprint against the memory budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from modelhost.cache.memory import malloc_held, process_rss, release_memory
from modelhost.catalog.model_catalog import ModelRef
from modelhost.manifest import Manifest
from modelhost.runtimes.base import Runtime
from modelhost.runtimes.factory import runtime_class
from modelhost.runtimes.pool import InstancePool
from modelhost.storage.base import FetchedVersion, ModelStore

log = logging.getLogger(__name__)

LOAD_FROM_REMOTE = "remote"
LOAD_FROM_DISK = "disk"


@dataclass(eq=False)
class LoadedModel:
    """A model version in memory: its instances behind a pool, and what loading it cost."""

    ref: ModelRef
    pool: InstancePool
    measured_bytes: int  # process RSS growth over the load
    reported_bytes: int | None  # what the runtime counted itself, when it can
    load_seconds: float
    # Seconds per load phase: download, verify (the store's fetch) and deserialize (the
    # runtime's load), for logs and metrics.
    phases: dict[str, float] = field(default_factory=dict)
    files: FetchedVersion | None = None  # held while loaded: the store keeps the files

    @property
    def manifest(self) -> Manifest:
        return self.ref.manifest

    @property
    def source(self) -> str:
        """Where this load read the model from: ``remote`` when any of its files came over the
        network from the store, ``disk`` when every file was on local disk already (a local
        repository, a baked folder, or the artifact cache keeping an evicted model's files)."""
        if self.files is not None and self.files.downloaded_bytes > 0:
            return LOAD_FROM_REMOTE
        return LOAD_FROM_DISK


class Loader(Protocol):
    """What the cache needs from a loader (the real one is :class:`ModelLoader`)."""

    async def estimate_bytes(self, ref: ModelRef) -> int: ...

    async def load(self, ref: ModelRef) -> LoadedModel: ...

    async def unload(self, model: LoadedModel) -> None: ...


class ModelLoader:
    """Loads versions from a store; runtime code runs on ``load_executor`` threads."""

    def __init__(
        self,
        store: ModelStore,
        *,
        cores: int,
        load_executor: Executor,
        predict_executor: Executor,
        work_dir: Path | None = None,
        inline_below: float = 0.0,
    ) -> None:
        self._store = store
        self._inline_below = inline_below
        self._work_dir = work_dir
        self._cores = cores
        self._load_executor = load_executor
        self._predict_executor = predict_executor

    async def estimate_bytes(self, ref: ModelRef) -> int:
        """The size to make room for before a first load: the hint, else the files' size."""
        if ref.manifest.memory_bytes:
            return ref.manifest.memory_bytes * ref.manifest.instances
        return await self._store.size_bytes(ref.name, ref.version) * ref.manifest.instances

    async def load(self, ref: ModelRef) -> LoadedModel:
        started = time.perf_counter()
        files = await self._store.fetch(ref.name, ref.version)
        try:
            return await self._load_fetched(ref, files, started)
        except BaseException:
            files.release()
            raise

    async def _load_fetched(
        self, ref: ModelRef, files: FetchedVersion, started: float
    ) -> LoadedModel:
        loop = asyncio.get_running_loop()
        cls = await loop.run_in_executor(self._load_executor, runtime_class, ref.manifest.runtime)
        manifest = ref.manifest
        calls_per_instance = max(1, self._cores // manifest.instances) if cls.thread_safe else 1
        # Compute threads of all the model's concurrent calls together ≈ the cores.
        threads = max(1, self._cores // (manifest.instances * calls_per_instance))
        runtime_started = time.perf_counter()
        instances, measured, deserialize = await loop.run_in_executor(
            self._load_executor,
            _load_instances,
            cls,
            threads,
            files.path,
            manifest,
            self._work_dir,
        )
        finished = time.perf_counter()
        phases = {
            "download": files.download_seconds,
            "verify": files.verify_seconds,
            "deserialize": deserialize,
            # Collecting garbage and reading the RSS around the runtime's load: the price of
            # measuring the footprint.
            "measure": finished - runtime_started - deserialize,
        }
        reported = [instance.reported_bytes() for instance in instances]
        pool = InstancePool(
            instances, calls_per_instance, self._predict_executor, inline_below=self._inline_below
        )
        log.info(
            "loaded %s in %.3fs (download %.3fs, %d bytes; verify %.3fs; deserialize %.3fs; "
            "measure %.3fs): %d instance(s), %d bytes measured",
            ref,
            finished - started,
            phases["download"],
            files.downloaded_bytes,
            phases["verify"],
            phases["deserialize"],
            phases["measure"],
            len(instances),
            measured,
            extra={"model": ref.name, "version": ref.version, "phases": phases},
        )
        return LoadedModel(
            ref=ref,
            pool=pool,
            measured_bytes=measured,
            reported_bytes=None if None in reported else sum(r or 0 for r in reported),
            load_seconds=finished - started,
            phases=phases,
            files=files,
        )

    async def unload(self, model: LoadedModel) -> None:
        """Wait for running calls to end, then release the instances and their memory."""
        await model.pool.wait_idle()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._load_executor, _unload_instances, model.pool.instances)
        model.pool.instances = []
        if model.files is not None:
            model.files.release()


def _load_instances(
    cls: type[Runtime], threads: int, path: Path, manifest: Manifest, work_dir: Path | None
) -> tuple[list[Runtime], int, float]:
    """The loaded instances, what the process grew by, and the seconds the runtime took."""
    release_memory()  # so the growth we read is this load's, not garbage from before it
    before, held_before = process_rss(), malloc_held()
    instances: list[Runtime] = []
    started = time.perf_counter()
    try:
        for _ in range(manifest.instances):
            instance = cls(threads=threads, work_dir=work_dir)
            instance.load(path, manifest)
            instances.append(instance)
    except BaseException:
        _unload_instances(instances)
        raise
    deserialize = time.perf_counter() - started
    return instances, _growth(before, held_before), deserialize


def _growth(rss_before: int, held_before: int | None) -> int:
    """What a load added: the RSS growth, or what the allocator newly holds if that is more
    (the load reused pages the process kept from an earlier unload; cache.memory)."""
    grown = process_rss() - rss_before
    held_after = malloc_held()
    if held_before is not None and held_after is not None:
        grown = max(grown, held_after - held_before)
    return max(0, grown)


def _unload_instances(instances: list[Runtime]) -> None:
    for instance in instances:
        try:
            instance.unload()
        except Exception:  # one instance failing to clean up must not keep the others loaded
            log.exception("unloading an instance of %s failed", type(instance).__name__)
    instances.clear()
    release_memory()
