"""The model catalogue in the database (the "registry"): models, versions and aliases, shared by
all replicas. :mod:`modelhost.catalog` keeps each replica's in-memory copy of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from modelhost.db.tables import model_aliases, model_versions, models
from modelhost.db.timestamps import as_utc, utcnow
from modelhost.errors import Conflict, ModelNotFound, VersionNotFound

REGISTERED = "registered"
DELETED = "deleted"


@dataclass(frozen=True)
class VersionRow:
    name: str
    version: int
    runtime: str
    manifest: dict[str, Any]
    files: dict[str, dict[str, Any]]
    size_bytes: int
    status: str
    created_at: datetime


@dataclass
class CatalogSnapshot:
    """Everything the catalogue needs, read in one go."""

    versions: dict[str, dict[int, VersionRow]] = field(default_factory=dict)
    aliases: dict[str, dict[str, int]] = field(default_factory=dict)


class CatalogStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def snapshot(self, *, include_deleted: bool = False) -> CatalogSnapshot:
        snapshot = CatalogSnapshot()
        query = (
            select(models.c.name, model_versions)
            .join(models, models.c.id == model_versions.c.model_id)
            .order_by(models.c.name, model_versions.c.version)
        )
        if not include_deleted:
            query = query.where(model_versions.c.status != DELETED)
        async with self._engine.connect() as db:
            rows = await db.execute(query)
            for row in rows:
                snapshot.versions.setdefault(row.name, {})[row.version] = _version(row)
            aliases = await db.execute(
                select(models.c.name, model_aliases.c.alias, model_aliases.c.version).join(
                    models, models.c.id == model_aliases.c.model_id
                )
            )
            for name, alias, version in aliases:
                snapshot.aliases.setdefault(name, {})[alias] = version
        return snapshot

    async def register_version(
        self,
        name: str,
        version: int,
        manifest: dict[str, Any],
        files: dict[str, dict[str, Any]],
        *,
        exist_ok: bool = False,
    ) -> VersionRow:
        """Record a version; a deleted one is brought back. A live one is a Conflict, unless
        ``exist_ok`` and it records the same manifest and files: then it is what another
        replica (or an earlier push of the same bytes) just registered, and it is returned."""
        values = _version_values(manifest, files)
        # Replicas starting together race to create the same model and version rows: the
        # loser's insert breaks a unique constraint. That is not an error in itself: look at
        # what won, and try again when it was only the model row.
        for _ in range(3):
            try:
                async with self._engine.begin() as db:
                    model_id = await self._model_id(db, name, create=True)
                    revived = await db.execute(
                        update(model_versions)
                        .where(
                            model_versions.c.model_id == model_id,
                            model_versions.c.version == version,
                            model_versions.c.status == DELETED,
                        )
                        .values(**values)
                    )
                    if revived.rowcount == 0:
                        await db.execute(
                            insert(model_versions).values(
                                model_id=model_id, version=version, **values
                            )
                        )
                return await self._row(name, version)
            except IntegrityError:
                existing = await self._live_row(name, version)
                if existing is None:
                    continue  # the model row was created under us; now it exists
                if exist_ok and existing.manifest == manifest and existing.files == files:
                    return existing
                raise Conflict(f"model {name!r} already has a version {version}") from None
        raise Conflict(f"model {name!r} version {version} could not be registered: retry")

    async def ensure_version(
        self,
        name: str,
        version: int,
        manifest: dict[str, Any],
        files: dict[str, dict[str, Any]],
    ) -> None:
        """Make the registry record this manifest and these files for a live version, whoever
        registers it first (the store is the source of truth: a replica scanning it at start)."""
        try:
            await self.register_version(name, version, manifest, files, exist_ok=True)
        except Conflict:
            if await self._live_row(name, version) is None:
                raise
            await self.update_manifest(name, version, manifest, files)

    async def update_manifest(
        self, name: str, version: int, manifest: dict[str, Any], files: dict[str, dict[str, Any]]
    ) -> None:
        """The version's files changed in the store (a hand-edited model.yaml, say)."""
        async with self._engine.begin() as db:
            model_id = await self._model_id(db, name)
            await db.execute(
                update(model_versions)
                .where(model_versions.c.model_id == model_id, model_versions.c.version == version)
                .values(_version_fields(manifest, files))
            )

    async def set_alias(self, name: str, alias: str, version: int) -> None:
        async with self._engine.begin() as db:
            model_id = await self._model_id(db, name)
            exists = await db.execute(
                select(model_versions.c.id).where(
                    model_versions.c.model_id == model_id, model_versions.c.version == version
                )
            )
            if exists.first() is None:
                raise VersionNotFound(f"model {name!r} has no version {version}")
            moved = await db.execute(
                update(model_aliases)
                .where(model_aliases.c.model_id == model_id, model_aliases.c.alias == alias)
                .values(version=version, updated_at=utcnow())
            )
            if moved.rowcount == 0:
                await db.execute(
                    insert(model_aliases).values(
                        model_id=model_id, alias=alias, version=version, updated_at=utcnow()
                    )
                )

    async def delete_version(self, name: str, version: int) -> None:
        """Mark the version deleted: a tombstone, so a store rescan does not bring it back."""
        async with self._engine.begin() as db:
            model_id = await self._model_id(db, name)
            removed = await db.execute(
                update(model_versions)
                .where(
                    model_versions.c.model_id == model_id,
                    model_versions.c.version == version,
                    model_versions.c.status != DELETED,
                )
                .values(status=DELETED)
            )
            if removed.rowcount == 0:
                raise VersionNotFound(f"model {name!r} has no version {version}")
            await db.execute(
                delete(model_aliases).where(
                    model_aliases.c.model_id == model_id, model_aliases.c.version == version
                )
            )

    async def _row(self, name: str, version: int) -> VersionRow:
        return (await self.snapshot()).versions[name][version]

    async def _live_row(self, name: str, version: int) -> VersionRow | None:
        return (await self.snapshot()).versions.get(name, {}).get(version)

    @staticmethod
    async def _model_id(db: AsyncConnection, name: str, *, create: bool = False) -> int:
        row = (await db.execute(select(models.c.id).where(models.c.name == name))).first()
        if row is not None:
            return int(row.id)
        if not create:
            raise ModelNotFound(f"unknown model {name!r}")
        result = await db.execute(insert(models).values(name=name, created_at=utcnow()))
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def _version_fields(manifest: dict[str, Any], files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "runtime": manifest["runtime"],
        "manifest": manifest,
        "files": files,
        "size_bytes": sum(int(info.get("size") or 0) for info in files.values()),
    }


def _version_values(manifest: dict[str, Any], files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {**_version_fields(manifest, files), "status": REGISTERED, "created_at": utcnow()}


def _version(row: Any) -> VersionRow:
    return VersionRow(
        name=row.name,
        version=row.version,
        runtime=row.runtime,
        manifest=row.manifest,
        files=row.files,
        size_bytes=row.size_bytes,
        status=row.status,
        created_at=as_utc(row.created_at),
    )
