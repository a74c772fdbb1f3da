"""``/api/v1/models``: the management API's model catalogue (list, inspect, register, alias,
delete)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from modelhost.api.deps import (
    AdminDep,
    CatalogDep,
    CatalogSyncDep,
    ModelCacheDep,
    PrincipalDep,
)
from modelhost.api.openapi import (
    CONFLICT,
    ERRORS,
    NOT_FOUND,
    UNAVAILABLE,
    AliasName,
    ModelName,
    VersionNumber,
)
from modelhost.api.schemas import AliasUpdate, ModelPublic, VersionCreate, VersionPublic
from modelhost.cache.model_cache import ModelCache
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.catalog.sync import CatalogSync
from modelhost.db.catalog import VersionRow
from modelhost.db.timestamps import utcnow
from modelhost.errors import ModelNotFound

router = APIRouter(prefix="/models", tags=["models"], responses=ERRORS)


def _version(cache: ModelCache, row: VersionRow) -> VersionPublic:
    state, reason = cache.status(row.name, row.version)
    seen = cache.describe(row.name, row.version)
    idle = seen.idle_seconds if seen is not None else None
    return VersionPublic(
        version=row.version,
        runtime=row.runtime,
        state=state.value,
        reason=reason,
        size_bytes=row.size_bytes,
        files=row.files,
        created_at=row.created_at,
        pinned=bool(row.manifest.get("pinned")),
        memory_bytes=(seen.footprint_bytes or seen.measured_bytes) if seen is not None else None,
        last_used_at=utcnow() - timedelta(seconds=idle) if idle is not None else None,
    )


async def _models(
    sync: CatalogSync, cache: ModelCache, catalog: ModelCatalog, only: str | None = None
) -> list[ModelPublic]:
    snapshot = await sync.stored()
    names = [only] if only is not None else sorted(snapshot.versions)
    if only is not None and only not in snapshot.versions:
        catalog.resolve(only)  # the same 400/404 as everywhere else
        # This replica's catalogue still has it, the database no longer does: another
        # replica deleted it, and this one has not refreshed yet. The database is the truth.
        raise ModelNotFound(f"unknown model {only!r}")
    return [
        ModelPublic(
            name=name,
            versions=[_version(cache, row) for row in snapshot.versions[name].values()],
            aliases=snapshot.aliases.get(name, {}),
        )
        for name in names
    ]


@router.get("")
async def list_models(
    sync: CatalogSyncDep, cache: ModelCacheDep, catalog: CatalogDep, principal: PrincipalDep
) -> list[ModelPublic]:
    """Every model, or, for a key limited to some models, those."""
    models = await _models(sync, cache, catalog)
    return [model for model in models if principal.may_use(model.name)]


@router.get("/{name}", responses=NOT_FOUND)
async def get_model(
    name: ModelName,
    sync: CatalogSyncDep,
    cache: ModelCacheDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> ModelPublic:
    principal.require_model(name)
    return (await _models(sync, cache, catalog, name))[0]


@router.get("/{name}/versions", responses=NOT_FOUND)
async def list_versions(
    name: ModelName,
    sync: CatalogSyncDep,
    cache: ModelCacheDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> list[VersionPublic]:
    principal.require_model(name)
    return (await _models(sync, cache, catalog, name))[0].versions


@router.post("/{name}/versions", status_code=201, responses=NOT_FOUND | CONFLICT | UNAVAILABLE)
async def register_version(
    name: ModelName, body: VersionCreate, sync: CatalogSyncDep, cache: ModelCacheDep, _: AdminDep
) -> VersionPublic:
    row = await sync.register_version(name, body.version)
    return _version(cache, row)


@router.put("/{name}/aliases/{alias}", responses=NOT_FOUND | CONFLICT | UNAVAILABLE)
async def move_alias(
    name: ModelName,
    alias: AliasName,
    body: AliasUpdate,
    sync: CatalogSyncDep,
    cache: ModelCacheDep,
    catalog: CatalogDep,
    _: AdminDep,
) -> ModelPublic:
    """Point ``alias`` at a version. The version loads first; the alias flips once it is READY."""
    await sync.move_alias(name, alias, body.version)
    return (await _models(sync, cache, catalog, name))[0]


@router.delete("/{name}/versions/{version}", status_code=204, responses=NOT_FOUND | CONFLICT)
async def delete_version(
    name: ModelName, version: VersionNumber, sync: CatalogSyncDep, _: AdminDep
) -> None:
    await sync.delete_version(name, version)
