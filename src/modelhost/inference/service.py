"""The inference data plane: one request's way from a name to the model's outputs.

Transport-agnostic: routes hand it an :class:`InferenceRequest` and encode what it returns.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Hashable
from dataclasses import dataclass

from modelhost.auth.principal import NOBODY, Principal
from modelhost.auth.quotas import Quotas
from modelhost.cache.loader import LoadedModel
from modelhost.cache.model_cache import ModelCache
from modelhost.catalog.model_catalog import ModelCatalog, ModelRef
from modelhost.inference.batching import ModelScheduler
from modelhost.inference.deadline import deadline_clock
from modelhost.inference.types import InferenceRequest, InferenceResponse, Tensor
from modelhost.inference.validation import check_inputs, check_requested
from modelhost.observability.metrics import Metrics


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """One loaded model version's queue, as it is now."""

    name: str
    version: int
    depth: int
    capacity: int  # the manifest's max_queue_size
    batches: int
    requests: int
    expired: int
    rejected: int


@dataclass(slots=True)
class InferenceOutcome:
    """A response and how it was served (for usage records and metrics)."""

    response: InferenceResponse
    ref: ModelRef
    batch_size: int


class InferenceService:
    """Resolves the model, checks the request, leases the model and queues it for a batch."""

    def __init__(
        self,
        catalog: ModelCatalog,
        cache: ModelCache,
        *,
        default_timeout: float,
        quotas: Quotas,
        metrics: Metrics | None = None,
    ) -> None:
        self._catalog = catalog
        self._cache = cache
        self._default_timeout = default_timeout
        self._quotas = quotas
        self._metrics = metrics
        # One scheduler per loaded model; it goes away with the model it was made for.
        self._schedulers: weakref.WeakKeyDictionary[LoadedModel, ModelScheduler] = (
            weakref.WeakKeyDictionary()
        )

    def resolve(self, name: str, version: str | None) -> ModelRef:
        """The model version a request names (raises 404/400 before its body is read)."""
        return self._catalog.resolve(name, version)

    def check_room(self, ref: ModelRef, principal: Principal = NOBODY) -> None:
        """Refuse at once (503) if the model's queue is full and ``principal`` holds its share
        of it, before the request's body is even read."""
        entry = self._cache.entry(ref.name, ref.version)
        model = entry.model if entry is not None else None
        scheduler = self._schedulers.get(model) if model is not None else None
        if scheduler is not None:
            scheduler.check_room(tenant_of(principal))

    async def infer(
        self,
        request: InferenceRequest,
        *,
        timeout: float | None = None,
        principal: Principal = NOBODY,
        ref: ModelRef | None = None,
    ) -> InferenceOutcome:
        """Serve ``request`` for ``principal``; with no principal given, the caller is nobody
        and may use no model (access fails closed). ``ref``: the version the request's model
        name and version resolved to just before (by :meth:`resolve`), not resolved again."""
        await self._quotas.acquire(principal)
        try:
            return await self._serve(request, timeout, principal, ref)
        finally:
            await self._quotas.release(principal)

    async def infer_all(
        self,
        requests: list[InferenceRequest],
        *,
        timeout: float | None = None,
        principal: Principal = NOBODY,
    ) -> list[InferenceOutcome]:
        """Serve ``requests`` as one request (one quota unit; an input split in chunks): all
        of them, or none. The first to fail cancels the others, so nothing of a refused request
        stays queued or runs after its answer; they leave their queues before it returns."""
        await self._quotas.acquire(principal)
        try:
            tasks = [
                asyncio.ensure_future(self._serve(request, timeout, principal))
                for request in requests
            ]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        finally:
            await self._quotas.release(principal)

    async def _serve(
        self,
        request: InferenceRequest,
        timeout: float | None,
        principal: Principal,
        ref: ModelRef | None = None,
    ) -> InferenceOutcome:
        principal.require_model(request.model_name)
        if ref is None:
            ref = self._catalog.resolve(request.model_name, request.model_version)
        # Everything about the request is checked before it can cause a load.
        manifest = ref.manifest
        inputs = check_inputs(request.inputs, manifest)
        specs = check_requested(request.outputs, manifest)
        rows = next(iter(inputs.values())).shape[0] if manifest.max_batch_size else 1
        deadline = deadline_clock() + (timeout if timeout is not None else self._default_timeout)
        entry = await self._cache.acquire(ref, deadline=deadline)
        try:
            assert entry.model is not None
            outputs, batch_size = await self.scheduler(entry.model).submit(
                inputs, rows, deadline, tenant_of(principal)
            )
        finally:
            self._cache.release(entry)
        tensors = [Tensor(spec.name, spec.datatype, outputs[spec.name]) for spec in specs]
        response = InferenceResponse(ref.name, str(ref.version), tensors, request.id)
        return InferenceOutcome(response, ref, batch_size)

    def scheduler(self, model: LoadedModel) -> ModelScheduler:
        scheduler = self._schedulers.get(model)
        if scheduler is None:
            scheduler = self._schedulers[model] = ModelScheduler(
                model.pool, model.manifest, str(model.ref), self._metrics
            )
        return scheduler

    def queues(self) -> list[QueueSnapshot]:
        """Every loaded model version's queue: its depth and its counters since it loaded."""
        return [
            QueueSnapshot(
                name=model.ref.name,
                version=model.ref.version,
                depth=scheduler.queue_depth,
                capacity=model.manifest.max_queue_size,
                batches=scheduler.stats.batches,
                requests=scheduler.stats.requests,
                expired=scheduler.stats.expired,
                rejected=scheduler.stats.rejected,
            )
            for model, scheduler in list(self._schedulers.items())
        ]


def tenant_of(principal: Principal) -> Hashable:
    """Whom a request counts against in a model queue's fair shares: its user (not its key, or
    a user with ten keys would get ten shares); callers without a user share one lane."""
    return principal.user_id if principal.user_id is not None else principal.name
