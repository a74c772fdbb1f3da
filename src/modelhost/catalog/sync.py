"""Keeps the in-memory catalogue in step with the database's, the database's with the model
store, and makes alias moves safe.

- ``scan_store`` registers versions found in the model store that the database lacks (the
  ``serve --model-repository DIR`` flow) and records why broken ones cannot be served.
- ``refresh`` re-reads the database into the catalogue, on every replica, every few seconds.
- An alias moves only once its new version is loaded: the new version is loaded first (here,
  and on every other replica at its next refresh, if the alias's old version was resident
  there), then the alias flips. Requests in flight keep their lease on the old version and
  finish on it; the old version is then left to the cache's normal eviction.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from modelhost.cache.entry import ModelState
from modelhost.cache.model_cache import ModelCache
from modelhost.catalog.model_catalog import ModelCatalog, ModelRef, VersionRecord
from modelhost.db.catalog import CatalogSnapshot, CatalogStore, VersionRow
from modelhost.errors import (
    Conflict,
    InvalidManifest,
    ModelhostError,
    StorageError,
    VersionNotFound,
)
from modelhost.manifest import Manifest, parse_manifest
from modelhost.storage.base import ModelStore, check_model_name

log = logging.getLogger(__name__)


class CatalogSync:
    """Moves models, versions and aliases between the store, the database and the catalogue."""

    def __init__(
        self,
        store: ModelStore,
        db: CatalogStore,
        catalog: ModelCatalog,
        cache: ModelCache,
    ) -> None:
        self._store = store
        self._db = db
        self._catalog = catalog
        self._cache = cache
        self._problems: dict[str, dict[int, str]] = {}  # store versions that cannot register
        self._lock = asyncio.Lock()

    async def rescan(self) -> None:
        try:
            await self.scan_store()
        except StorageError as exc:
            # The store is away (S3 down): serve what the registry knows; loads will report
            # the storage error themselves.
            log.warning("could not scan the model store, using the registry as it is: %s", exc)
        await self.refresh()

    async def scan_store(self) -> None:
        known = (await self._db.snapshot(include_deleted=True)).versions
        problems: dict[str, dict[int, str]] = {}
        for name, versions in (await self._store.list_models()).items():
            try:
                check_model_name(name)
            except ModelhostError:
                continue  # a folder no request could name is not a model
            for version in versions:
                try:
                    await self._sync_version(name, version, known.get(name, {}).get(version))
                except InvalidManifest as exc:
                    problems.setdefault(name, {})[version] = exc.message
        self._problems = problems

    async def _sync_version(self, name: str, version: int, row: VersionRow | None) -> None:
        if row is not None and row.status == "deleted":
            return
        manifest = (await self._store.read_manifest(name, version)).model_dump(mode="json")
        if row is not None and row.manifest == manifest:
            return
        files = {
            path: info.to_json() for path, info in (await self._store.files(name, version)).items()
        }
        if row is None:
            # Another replica scanning the same store at the same moment may register it
            # first; that is the same version, not a conflict.
            await self._db.ensure_version(name, version, manifest, files)
        else:
            await self._db.update_manifest(name, version, manifest, files)

    async def stored(self) -> CatalogSnapshot:
        """The database's catalogue as it is now (not this replica's copy of it)."""
        return await self._db.snapshot()

    async def refresh(self) -> None:
        async with self._lock:
            snapshot = await self._db.snapshot()
            aliases = await self._safe_aliases(snapshot)
            self._catalog.replace(self._records(snapshot), aliases)

    def _records(self, snapshot: CatalogSnapshot) -> dict[str, dict[int, VersionRecord]]:
        models: dict[str, dict[int, VersionRecord]] = {}
        for name, rows in snapshot.versions.items():
            records = models.setdefault(name, {})
            for version, row in rows.items():
                try:
                    manifest = parse_manifest(row.manifest, source=f"{name}/{version}")
                    records[version] = VersionRecord(version, manifest)
                except InvalidManifest as exc:
                    records[version] = VersionRecord(version, None, exc.message)
        for name, broken in self._problems.items():
            for version, error in broken.items():
                models.setdefault(name, {}).setdefault(version, VersionRecord(version, None, error))
        return {name: dict(sorted(records.items())) for name, records in models.items()}

    async def _safe_aliases(self, snapshot: CatalogSnapshot) -> dict[str, dict[str, int]]:
        """The registry's aliases, except that an alias whose old version is resident here
        keeps pointing at it until its new version has loaded."""
        current = self._catalog.all_aliases()
        result: dict[str, dict[str, int]] = {}
        for name, aliases in snapshot.aliases.items():
            result[name] = dict(aliases)
            for alias, version in aliases.items():
                old = current.get(name, {}).get(alias)
                if old is None or old == version or not self._resident(name, old):
                    continue
                if not await self._preload(name, version, snapshot):
                    result[name][alias] = old
        return result

    def _resident(self, name: str, version: int) -> bool:
        entry = self._cache.entry(name, version)
        return entry is not None and entry.state is ModelState.READY

    async def _preload(self, name: str, version: int, snapshot: CatalogSnapshot) -> bool:
        row = snapshot.versions.get(name, {}).get(version)
        if row is None:
            return False
        try:
            manifest = parse_manifest(row.manifest, source=f"{name}/{version}")
            await self._cache.load(ModelRef(name, version, manifest))
        except ModelhostError as exc:
            log.error(
                "alias target %s/%s did not load; the alias stays put: %s", name, version, exc
            )
            return False
        return True

    async def run_periodically(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception as exc:  # the database may be away; the old snapshot still serves
                log.warning("registry refresh failed, keeping the last snapshot: %s", exc)

    # -- changes made through this replica ------------------------------------------------------

    async def register_version(self, name: str, version: int | None) -> VersionRow:
        """Register a version that is already in the store (the highest unregistered one if
        ``version`` is None)."""
        check_model_name(name)
        stored = (await self._store.list_models()).get(name, [])
        known = (await self._db.snapshot()).versions.get(name, {})
        if version is None:
            fresh = [v for v in stored if v not in known]
            if not fresh:
                raise VersionNotFound(f"the store holds no unregistered version of {name!r}")
            version = max(fresh)
        elif version not in stored:
            raise VersionNotFound(f"the store holds no version {version} of {name!r}")
        manifest = (await self._store.read_manifest(name, version)).model_dump(mode="json")
        files = {
            path: info.to_json() for path, info in (await self._store.files(name, version)).items()
        }
        row = await self._db.register_version(name, version, manifest, files)
        await self.refresh()
        return row

    async def move_alias(self, name: str, alias: str, version: int) -> None:
        if alias.isdigit() or not alias:
            raise Conflict("an alias cannot be a number: it would shadow a version")
        ref = self._catalog.resolve(name, str(version))
        await self._cache.load(ref)  # the alias flips only once its new version is READY
        await self._db.set_alias(name, alias, version)
        self._catalog.set_alias(name, alias, version)

    async def delete_version(self, name: str, version: int) -> None:
        ref = self._catalog.resolve(name, str(version))
        _refuse_delete_if_needed(ref.manifest, name, version, self._catalog.aliases(name))
        entry = self._cache.entry(name, version)
        if entry is not None and entry.leases:
            raise Conflict(f"model {name} version {version} is in use by {entry.leases} requests")
        await self._db.delete_version(name, version)
        await self.refresh()
        await self._cache.unload(ref)


def _refuse_delete_if_needed(
    manifest: Manifest, name: str, version: int, aliases: dict[str, Any]
) -> None:
    if manifest.pinned:
        raise Conflict(f"model {name} version {version} is pinned")
    pointing = sorted(alias for alias, target in aliases.items() if target == version)
    if pointing:
        raise Conflict(
            f"aliases {pointing} point at model {name} version {version}; move them first"
        )
