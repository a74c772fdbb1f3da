"""The V2 model repository extension, transport-agnostic: list the models with their states,
load and unload them (``/v2/repository/...`` over REST)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from modelhost.cache.entry import ModelState
from modelhost.cache.model_cache import ModelCache
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.catalog.sync import CatalogSync


@dataclass(frozen=True)
class RepositoryEntry:
    name: str
    version: str
    state: str
    reason: str


class RepositoryService:
    """Operator-facing control of what is loaded; obeys the same cache rules as requests."""

    def __init__(self, catalog: ModelCatalog, cache: ModelCache, sync: CatalogSync) -> None:
        self.catalog = catalog
        self.cache = cache
        self.sync = sync

    async def index(self, *, ready_only: bool = False) -> list[RepositoryEntry]:
        await self.sync.rescan()  # like Triton: the index reflects the repository as it is now
        listed: list[RepositoryEntry] = []
        for name in self.catalog.names():
            for record in self.catalog.versions(name):
                if record.manifest is None:
                    state, reason = ModelState.UNAVAILABLE, f"invalid model.yaml: {record.error}"
                else:
                    state, reason = self.cache.status(name, record.version)
                if ready_only and state is not ModelState.READY:
                    continue
                listed.append(RepositoryEntry(name, str(record.version), state.value, reason))
        return listed

    async def load(self, name: str, version: str | None = None) -> None:
        await self.sync.rescan()
        await self.cache.load(self.catalog.resolve(name, version))

    async def unload(self, name: str, version: str | None = None) -> None:
        """Unload one version, or every loaded version of the model when none is named."""
        if version is not None:
            await self.cache.unload(self.catalog.resolve(name, version))
            return
        self.catalog.versions(name)  # 404 for an unknown model
        loaded = [entry.ref for entry in self.cache.entries() if entry.name == name]
        await asyncio.gather(*(self.cache.unload(ref) for ref in loaded))

    def state(self, name: str, version: str | None) -> ModelState:
        ref = self.catalog.resolve(name, version)
        return self.cache.status(ref.name, ref.version)[0]
