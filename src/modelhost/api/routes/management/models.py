"""``/api/v1/models``: the management API's model catalogue (list, inspect, register, alias,
delete)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from modelhost.api.deps import AdminDep, PrincipalDep, ServicesDep
from modelhost.api.schemas import AliasUpdate, ModelPublic, VersionCreate, VersionPublic
from modelhost.cache.entry import ModelState
from modelhost.db.catalog import VersionRow
from modelhost.db.timestamps import utcnow
from modelhost.services import Services

router = APIRouter(prefix="/models", tags=["models"])


def _version(services: Services, row: VersionRow) -> VersionPublic:
    entry = services.cache.entry(row.name, row.version)
    idle = services.cache.seconds_since_use(entry) if entry else None
    return VersionPublic(
        version=row.version,
        runtime=row.runtime,
        state=(entry.state if entry else ModelState.UNAVAILABLE).value,
        reason=entry.reason if entry else "not loaded",
        size_bytes=row.size_bytes,
        files=row.files,
        created_at=row.created_at,
        pinned=bool(row.manifest.get("pinned")),
        memory_bytes=(entry.footprint or entry.known_size) if entry else None,
        last_used_at=utcnow() - timedelta(seconds=idle) if idle is not None else None,
    )


async def _models(services: Services, only: str | None = None) -> list[ModelPublic]:
    snapshot = await services.sync.db.snapshot()
    names = [only] if only is not None else sorted(snapshot.versions)
    if only is not None and only not in snapshot.versions:
        services.catalog.resolve(only)  # the same 400/404 as everywhere else
    return [
        ModelPublic(
            name=name,
            versions=[_version(services, row) for row in snapshot.versions[name].values()],
            aliases=snapshot.aliases.get(name, {}),
        )
        for name in names
    ]


@router.get("")
async def list_models(services: ServicesDep, _: PrincipalDep) -> list[ModelPublic]:
    return await _models(services)


@router.get("/{name}")
async def get_model(name: str, services: ServicesDep, _: PrincipalDep) -> ModelPublic:
    return (await _models(services, name))[0]


@router.get("/{name}/versions")
async def list_versions(name: str, services: ServicesDep, _: PrincipalDep) -> list[VersionPublic]:
    return (await _models(services, name))[0].versions


@router.post("/{name}/versions", status_code=201)
async def register_version(
    name: str, body: VersionCreate, services: ServicesDep, _: AdminDep
) -> VersionPublic:
    row = await services.sync.register_version(name, body.version)
    return _version(services, row)


@router.put("/{name}/aliases/{alias}")
async def move_alias(
    name: str, alias: str, body: AliasUpdate, services: ServicesDep, _: AdminDep
) -> ModelPublic:
    """Point ``alias`` at a version. The version loads first; the alias flips once it is READY."""
    await services.sync.move_alias(name, alias, body.version)
    return (await _models(services, name))[0]


@router.delete("/{name}/versions/{version}", status_code=204)
async def delete_version(name: str, version: int, services: ServicesDep, _: AdminDep) -> None:
    await services.sync.delete_version(name, version)
