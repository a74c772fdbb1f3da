"""The one place where the long-lived objects of a server are built and wired together.

:class:`Services` holds them for the server's start and stop; nothing on the request path gets
it. :func:`modelhost.app.create_app` hands each route, middleware and collector the one component
it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from modelhost.auth.authenticator import Authenticator
from modelhost.auth.quotas import Limits, LocalQuotas, Quotas, RedisQuotas
from modelhost.cache.eviction import make_policy
from modelhost.cache.loader import LoadedModel, ModelLoader
from modelhost.cache.memory import process_rss
from modelhost.cache.model_cache import ModelCache
from modelhost.cache.warm_start import warm_start
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.catalog.sync import CatalogSync
from modelhost.db.catalog import CatalogStore
from modelhost.db.engine import create_engine
from modelhost.db.migrate import upgrade
from modelhost.db.usage import UsageStore
from modelhost.db.usage_writer import UsageWriter
from modelhost.db.users import UserStore
from modelhost.errors import ModelhostError
from modelhost.inference.repository_extension import RepositoryService
from modelhost.inference.service import InferenceService
from modelhost.lifecycle import Lifecycle
from modelhost.observability.emf import EmfEmitter
from modelhost.observability.metering import Metering
from modelhost.observability.metrics import Metrics
from modelhost.observability.state_metrics import (
    artifact_cache_families,
    cache_families,
    in_flight_families,
    queue_families,
    usage_writer_families,
)
from modelhost.runtimes.factory import runtime_class
from modelhost.settings import Settings
from modelhost.storage.base import ModelStore
from modelhost.storage.factory import open_store

log = logging.getLogger(__name__)
YOUNG_GC_THRESHOLD = 20_000  # allocations between collections of the young generation


@dataclass
class Services:
    """Everything a running server holds; built by :func:`build_services`."""

    settings: Settings
    engine: AsyncEngine
    store: ModelStore
    catalog: ModelCatalog
    sync: CatalogSync
    cache: ModelCache
    loader: ModelLoader
    inference: InferenceService
    repository: RepositoryService
    users: UserStore
    usage: UsageStore
    usage_writer: UsageWriter
    authenticator: Authenticator | None
    quotas: Quotas
    load_executor: ThreadPoolExecutor
    predict_executor: ThreadPoolExecutor
    metrics: Metrics
    emf: EmfEmitter | None
    lifecycle: Lifecycle
    metering: Metering
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        if self.settings.db_auto_migrate:
            await upgrade(self.engine)
        if self.authenticator is None:
            log.warning("MODELHOST_AUTH=disabled: anyone who can reach this server is an admin")
        await self.sync.rescan()
        self.usage_writer.start()
        await self._import_runtimes()
        # The frameworks imported above leave hundreds of thousands of long-lived objects;
        # without this every full collection (one before each model load, to measure it) walks
        # them all and stalls for ~0.1-0.4 s. Frozen before any model loads: a model's own
        # objects must stay collectable, or an evicted model held in a reference cycle would
        # never be freed.
        gc.collect()
        gc.freeze()
        # A request makes a few hundred container objects, so at the default threshold (700)
        # the young generation is collected every few requests: ~2.5 % of a small request's
        # CPU under load (perf). Collected 30 times less often, each collection walks only
        # what is still alive, which is no more: the requests in flight.
        gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
        await self._load_pinned()
        await self._warm_start(self.settings.warm_start_window_seconds)
        self._spawn(self.sync.run_periodically(self.settings.registry_refresh_seconds))
        if self.emf is not None:
            self._spawn(self._emit_emf(self.emf, self.settings.emf_interval_seconds))
        if self.settings.idle_unload_seconds:
            self._spawn(self._unload_idle_models(self.settings.idle_unload_seconds))
        self.lifecycle.ready = True

    async def stop(self) -> None:
        self.lifecycle.ready = False
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.cache.close()
        await self.store.close()
        await self.usage_writer.close()
        if isinstance(self.quotas, RedisQuotas):
            await self.quotas.close()
        await self.engine.dispose()
        self.predict_executor.shutdown(wait=True)
        self.load_executor.shutdown(wait=True)

    def _spawn(self, coro: object) -> None:
        self._background.append(asyncio.get_running_loop().create_task(coro))  # type: ignore[arg-type]

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

    async def _warm_start(self, window: float) -> None:
        """Start preloading the models served most lately; wait for it no longer than the
        readiness setting allows."""
        if not window:
            return

        async def preload() -> None:
            await warm_start(self.usage, self.catalog, self.cache, window_seconds=window)

        task = asyncio.get_running_loop().create_task(preload())
        self._background.append(task)
        await asyncio.wait([task], timeout=self.settings.warm_start_ready_wait_seconds)

    async def _emit_emf(self, emf: EmfEmitter, interval: float) -> None:
        # Load failures go out per interval (a CloudWatch alarm sums them over its period).
        failures_seen = self.cache.stats.load_failures
        while True:
            await asyncio.sleep(interval)
            failures = self.cache.stats.load_failures
            emf.emit({**self.process_figures(), "ModelLoadFailures": failures - failures_seen})
            failures_seen = failures

    def process_figures(self) -> dict[str, float]:
        """The process-level numbers the EMF lines carry."""
        cache = self.cache.snapshot()
        resident, budget = cache.resident_bytes, cache.budget_bytes
        return {
            "ResidentBytes": resident,
            "BudgetBytes": budget,
            "ProcessRSSBytes": process_rss(),
            "MemoryUtilization": 100.0 * resident / budget if budget else 0.0,
            "ResidentModels": sum(1 for model in cache.models if model.footprint_bytes),
            "QueueDepth": sum(queue.depth for queue in self.inference.queues()),
        }

    async def _unload_idle_models(self, idle: float) -> None:
        while True:
            await asyncio.sleep(min(max(idle / 4, 0.05), 5.0))
            self.cache.unload_idle(idle)


def build_services(settings: Settings) -> Services:
    store = open_store(settings)
    engine = create_engine(settings)
    catalog = ModelCatalog(serves=settings.models)
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
        work_dir=settings.cache_dir / "runtimes",
        inline_below=settings.inline_predict_ms / 1000,
    )
    metrics = Metrics()

    def record_load(model: LoadedModel) -> None:
        name, version, source = model.ref.name, str(model.ref.version), model.source
        for phase, seconds in {**model.phases, "total": model.load_seconds}.items():
            metrics.load_duration.labels(name, version, phase, source).observe(seconds)

    cache = ModelCache(
        loader,
        budget=settings.memory_budget,
        retry_initial=settings.load_retry_initial_seconds,
        retry_max=settings.load_retry_max_seconds,
        on_loaded=record_load,
        policy=make_policy(settings.eviction_policy),
    )
    sync = CatalogSync(store, CatalogStore(engine), catalog, cache)
    users = UserStore(engine)
    usage = UsageStore(engine)
    limits = Limits(settings.default_requests_per_minute, settings.max_inflight_per_user)
    quotas: Quotas = (
        RedisQuotas(settings.redis_url, limits) if settings.redis_url else LocalQuotas(limits)
    )
    usage_writer = UsageWriter(
        usage,
        settings.usage_journal,
        flush_seconds=settings.usage_flush_seconds,
        batch_size=settings.usage_batch_size,
        enabled=settings.usage_records,
    )
    emf = EmfEmitter(pod=os.environ.get("HOSTNAME", "local")) if settings.cloudwatch_emf else None
    inference = InferenceService(
        catalog,
        cache,
        default_timeout=settings.request_timeout_seconds,
        quotas=quotas,
        metrics=metrics,
    )
    lifecycle = Lifecycle()
    # State is read when Prometheus scrapes, each family from the one component it reports on.
    metrics.watch(lambda: cache_families(cache.snapshot()))
    metrics.watch(lambda: queue_families(inference.queues()))
    metrics.watch(lambda: in_flight_families(lifecycle.in_flight))
    metrics.watch(lambda: usage_writer_families(usage_writer))
    artifacts = store.artifact_cache
    if artifacts is not None:
        metrics.watch(lambda: artifact_cache_families(artifacts))
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        catalog=catalog,
        sync=sync,
        cache=cache,
        loader=loader,
        inference=inference,
        repository=RepositoryService(catalog, cache, sync),
        users=users,
        usage=usage,
        usage_writer=usage_writer,
        authenticator=(
            Authenticator(users, cache_seconds=settings.auth_cache_seconds)
            if settings.auth == "enabled"
            else None
        ),
        quotas=quotas,
        load_executor=load_executor,
        predict_executor=predict_executor,
        metrics=metrics,
        emf=emf,
        lifecycle=lifecycle,
        metering=Metering(metrics, usage_writer, emf),
    )
