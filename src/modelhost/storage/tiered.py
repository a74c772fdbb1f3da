"""Versions baked into the image, consulted before the model repository (S3, usually).

A pod started from an image that carries a model version answers its first request without a
download: that version is served from the image's read-only folder, while every other version
comes from the repository as usual. The baked folder has the repository's layout
(``<name>/<version>/``, as ``modelhost models pull`` writes it) and is never written to: pushes
go to the repository.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from modelhost.errors import StorageError
from modelhost.manifest import Manifest
from modelhost.storage.base import FetchedVersion, FileInfo, ModelStore, Progress, PushedVersion
from modelhost.storage.local import LocalModelStore

log = logging.getLogger(__name__)


class TieredModelStore(ModelStore):
    """``baked`` first (a local folder), then ``repository`` for what the folder lacks."""

    def __init__(self, baked: LocalModelStore, repository: ModelStore) -> None:
        self.baked = baked
        self.repository = repository
        self.uri = repository.uri
        self.artifact_cache = repository.artifact_cache
        self._baked_versions: dict[str, list[int]] | None = None

    async def _baked(self) -> dict[str, list[int]]:
        # The image's folder never changes while the process runs: scan it once.
        if self._baked_versions is None:
            exists = await asyncio.to_thread(self.baked.root.is_dir)
            self._baked_versions = await self.baked.list_models() if exists else {}
        return self._baked_versions

    async def _store_of(self, name: str, version: int) -> ModelStore:
        return self.baked if version in (await self._baked()).get(name, []) else self.repository

    async def list_models(self) -> dict[str, list[int]]:
        baked = await self._baked()
        try:
            remote = await self.repository.list_models()
        except StorageError as exc:
            if not baked:
                raise
            # The repository is away: the baked versions still serve.
            log.warning("model repository unavailable, listing the baked versions: %s", exc)
            remote = {}
        names = baked.keys() | remote.keys()
        return {
            name: sorted(set(baked.get(name, [])) | set(remote.get(name, [])))
            for name in sorted(names)
        }

    async def read_manifest(self, name: str, version: int) -> Manifest:
        return await (await self._store_of(name, version)).read_manifest(name, version)

    async def files(self, name: str, version: int) -> dict[str, FileInfo]:
        return await (await self._store_of(name, version)).files(name, version)

    async def fetch(self, name: str, version: int) -> FetchedVersion:
        return await (await self._store_of(name, version)).fetch(name, version)

    async def download(
        self, name: str, version: int, dest: Path, progress: Progress | None = None
    ) -> dict[str, FileInfo]:
        store = await self._store_of(name, version)
        return await store.download(name, version, dest, progress)

    async def put_version(
        self,
        name: str,
        source: Path,
        *,
        version: int | None = None,
        aliases: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> PushedVersion:
        return await self.repository.put_version(
            name, source, version=version, aliases=aliases, progress=progress
        )

    async def close(self) -> None:
        await self.repository.close()
