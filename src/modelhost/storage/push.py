"""What every store does first when a version is pushed: check the model name and the folder
(its model.yaml must parse), and give the version its number, refusing one the store already
holds. The store then copies the files its own way."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from modelhost.errors import VersionExists
from modelhost.storage.base import ModelStore, check_model_name
from modelhost.storage.index import checked_source


@dataclass(frozen=True, slots=True)
class PushPlan:
    """The files to copy (relative path → (file, size)) and the version they become."""

    files: dict[str, tuple[Path, int]]
    version: int


async def plan_push(store: ModelStore, name: str, source: Path, version: int | None) -> PushPlan:
    """Check a push of ``source`` as ``name`` into ``store``; the version is the one asked for,
    or the highest stored + 1. Raises InvalidModelName, InvalidManifest or VersionExists."""
    check_model_name(name)
    files = await asyncio.to_thread(checked_source, source)
    stored = (await store.list_models()).get(name, [])
    version = version if version is not None else max(stored, default=0) + 1
    if version in stored:
        raise version_exists(store, name, version)
    return PushPlan(files, version)


def version_exists(store: ModelStore, name: str, version: int) -> VersionExists:
    """The refusal of a push onto a version already stored (found before or during the copy)."""
    return VersionExists(f"{store.uri} already holds version {version} of model {name!r}")
