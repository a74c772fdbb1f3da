"""The inference data plane: one request's way from a name to the model's outputs.

Transport-agnostic: routes hand it an :class:`InferenceRequest` and encode what it returns.
"""

from __future__ import annotations

from modelhost.cache.model_cache import ModelCache
from modelhost.inference.types import InferenceRequest, InferenceResponse, Tensor
from modelhost.inference.validation import check_inputs, check_requested, conform_outputs
from modelhost.registry.catalog import ModelCatalog, ModelRef
from modelhost.registry.manifest import TensorSpec
from modelhost.runtimes.base import Runtime, Tensors


class InferenceService:
    """Resolves the model, checks the request, leases the model and runs it."""

    def __init__(self, catalog: ModelCatalog, cache: ModelCache) -> None:
        self._catalog = catalog
        self._cache = cache

    def resolve(self, name: str, version: str | None) -> ModelRef:
        """The model version a request names (raises 404/400 before its body is read)."""
        return self._catalog.resolve(name, version)

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        ref = self._catalog.resolve(request.model_name, request.model_version)
        # Everything about the request is checked before it can cause a load.
        inputs = check_inputs(request.inputs, ref.manifest)
        specs = check_requested(request.outputs, ref.manifest)
        label = str(ref)
        async with self._cache.lease(ref) as model:
            outputs = await model.pool.call(lambda instance: _run(instance, inputs, specs, label))
        return InferenceResponse(ref.name, str(ref.version), outputs, request.id)


def _run(instance: Runtime, inputs: Tensors, specs: list[TensorSpec], label: str) -> list[Tensor]:
    # In the worker thread: casting big outputs is work the event loop should not do.
    return conform_outputs(instance.predict(inputs), specs, label)
