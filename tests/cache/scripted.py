"""A loader that is a real object whose loads the test scripts: how long they "take" (reported,
not slept), what they "allocate", when they finish and whether they fail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from modelhost.cache.loader import LoadedModel
from modelhost.catalog.model_catalog import ModelRef
from modelhost.manifest import Manifest
from modelhost.runtimes.pool import InstancePool

T = TypeVar("T")
MB = 1 << 20
_EXECUTOR = ThreadPoolExecutor(max_workers=2)


def ref(name: str, hint_mb: int = 0, *, pinned: bool = False) -> ModelRef:
    manifest = Manifest.model_validate(
        {
            "runtime": "python",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
            "memory_bytes": hint_mb * MB,
            "pinned": pinned,
        }
    )
    return ModelRef(name, 1, manifest)


class ScriptedLoader:
    """Loads take as long as the test says, "allocate" what it says, and fail when told."""

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}
        self.seconds: dict[str, float] = {}  # the load time each load reports
        self.download_seconds: dict[str, float] = {}  # the part of it spent downloading
        self.file_size = 1 * MB
        self.gates: dict[str, asyncio.Event] = {}
        self.failures: dict[str, Exception] = {}
        self.loads: list[str] = []
        self.unloads: list[str] = []

    async def estimate_bytes(self, model: ModelRef) -> int:
        return model.manifest.memory_bytes or self.file_size

    async def load(self, model: ModelRef) -> LoadedModel:
        self.loads.append(model.name)
        if model.name in self.gates:
            await self.gates[model.name].wait()
        if model.name in self.failures:
            raise self.failures[model.name]
        pool = InstancePool([], 1, _EXECUTOR)
        seconds = self.seconds.get(model.name, 0.0)
        phases = {"download": self.download_seconds.get(model.name, 0.0)}
        size = self.sizes.get(model.name, 10 * MB)
        return LoadedModel(model, pool, size, None, seconds, phases)

    async def unload(self, model: LoadedModel) -> None:
        self.unloads.append(model.ref.name)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]
