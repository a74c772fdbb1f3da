"""The catalogue of servable model versions: what the cache resolves request names against.

It is a snapshot of the model store, refreshed at start and whenever the repository is indexed
or a model is loaded explicitly, so the request path never touches the disk to resolve a name.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from modelhost.errors import InvalidManifest, ModelNotFound, Unavailable, VersionNotFound
from modelhost.registry.manifest import Manifest
from modelhost.storage.base import ModelStore, check_model_name


@dataclass(frozen=True, slots=True)
class ModelRef:
    """One servable version of a model: what a lease is taken on."""

    name: str
    version: int
    manifest: Manifest

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """A version found in the store: its manifest, or why it could not be read."""

    version: int
    manifest: Manifest | None
    error: str | None = None


class ModelCatalog:
    """Model names → versions, each with its parsed manifest."""

    def __init__(self, store: ModelStore) -> None:
        self._store = store
        self._models: dict[str, dict[int, VersionRecord]] = {}
        self._refresh_lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Re-read the store; versions whose model.yaml is broken are kept with their error."""
        async with self._refresh_lock:
            listing = await self._store.list_models()
            models: dict[str, dict[int, VersionRecord]] = {}
            for name, versions in listing.items():
                try:
                    check_model_name(name)
                except Exception:
                    continue  # a folder whose name no request could name is not a model
                records: dict[int, VersionRecord] = {}
                for version in versions:
                    try:
                        manifest = await self._store.read_manifest(name, version)
                        records[version] = VersionRecord(version, manifest)
                    except InvalidManifest as exc:
                        records[version] = VersionRecord(version, None, exc.message)
                models[name] = records
            self._models = models

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[VersionRecord]:
        """All versions of ``name``, ascending; raises ModelNotFound."""
        return list(self._records(name).values())

    def resolve(self, name: str, version: str | None = None) -> ModelRef:
        """The version a request names (or the highest one when it names none)."""
        records = self._records(name)
        if version is None or version == "":
            record = records[max(records)]
        else:
            number = int(version) if version.isascii() and version.isdigit() else None
            if number is None or number not in records:
                raise VersionNotFound(f"model {name!r} has no version {version!r}")
            record = records[number]
        if record.manifest is None:
            raise Unavailable(
                f"model {name!r} version {record.version} cannot be served: {record.error}"
            )
        return ModelRef(name, record.version, record.manifest)

    def _records(self, name: str) -> dict[int, VersionRecord]:
        records = self._models.get(name)
        if records is None:
            check_model_name(name)  # a malformed name is a 400, not a 404
            raise ModelNotFound(f"unknown model {name!r}")
        return records
