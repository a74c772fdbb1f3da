"""The one place where the long-lived objects of a server are built and wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from modelhost.cache.loader import ModelLoader
from modelhost.cache.model_cache import ModelCache
from modelhost.errors import ModelhostError
from modelhost.inference.admission import InFlightLimiter
from modelhost.inference.repository import RepositoryService
from modelhost.inference.service import InferenceService
from modelhost.registry.catalog import ModelCatalog
from modelhost.runtimes.factory import runtime_class
from modelhost.settings import Settings
from modelhost.storage.local import LocalModelStore

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a running server holds; built by :func:`build_services`."""

    settings: Settings
    catalog: ModelCatalog
    cache: ModelCache
    loader: ModelLoader
    inference: InferenceService
    repository: RepositoryService
    load_executor: ThreadPoolExecutor
    predict_executor: ThreadPoolExecutor
    ready: bool = False
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        await self.catalog.refresh()
        await self._import_runtimes()
        await self._load_pinned()
        if self.settings.idle_unload_seconds:
            self._background.append(asyncio.create_task(self._unload_idle_models()))
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.cache.close()
        self.predict_executor.shutdown(wait=True)
        self.load_executor.shutdown(wait=True)

    async def _import_runtimes(self) -> None:
        # Import the frameworks the repository uses now, so the memory an import takes is not
        # charged to the first model that happens to need it. A missing extra only logs: the
        # models that need it fail their loads with the install hint.
        wanted = {
            record.manifest.runtime
            for name in self.catalog.names()
            for record in self.catalog.versions(name)
            if record.manifest is not None
        }
        loop = asyncio.get_running_loop()
        for runtime in sorted(wanted):
            try:
                await loop.run_in_executor(self.load_executor, runtime_class, runtime)
            except ModelhostError as exc:
                log.warning("%s", exc.message)

    async def _load_pinned(self) -> None:
        for name in self.catalog.names():
            for record in self.catalog.versions(name):
                if record.manifest is None or not record.manifest.pinned:
                    continue
                try:
                    await self.cache.load(self.catalog.resolve(name, str(record.version)))
                except ModelhostError as exc:
                    log.error("pinned model %s/%s did not load: %s", name, record.version, exc)

    async def _unload_idle_models(self) -> None:
        idle = self.settings.idle_unload_seconds
        assert idle is not None
        while True:
            await asyncio.sleep(min(max(idle / 4, 0.05), 5.0))
            self.cache.unload_idle(idle)


def build_services(settings: Settings) -> Services:
    store = LocalModelStore(settings.model_repository)
    catalog = ModelCatalog(store)
    load_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="modelhost-load")
    # Enough threads for every model's call slots to be busy at once on a few models.
    predict_executor = ThreadPoolExecutor(
        max_workers=max(8, settings.cores * 4), thread_name_prefix="modelhost-predict"
    )
    loader = ModelLoader(
        store,
        cores=settings.cores,
        load_executor=load_executor,
        predict_executor=predict_executor,
    )
    cache = ModelCache(
        loader,
        budget=settings.memory_budget,
        retry_initial=settings.load_retry_initial_seconds,
        retry_max=settings.load_retry_max_seconds,
    )
    return Services(
        settings=settings,
        catalog=catalog,
        cache=cache,
        loader=loader,
        inference=InferenceService(
            catalog,
            cache,
            default_timeout=settings.request_timeout_seconds,
            limiter=InFlightLimiter(settings.max_inflight_per_user),
        ),
        repository=RepositoryService(catalog, cache),
        load_executor=load_executor,
        predict_executor=predict_executor,
    )
