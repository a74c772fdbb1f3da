"""A model store that is a folder on local disk, laid out as ``<root>/<name>/<version>/``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelhost.errors import ModelNotFound, Unavailable, VersionNotFound
from modelhost.registry.manifest import Manifest, read_manifest
from modelhost.storage.base import FileInfo, ModelStore, check_model_name


class LocalModelStore(ModelStore):
    """Serves versions straight from the folder: nothing is copied, fetch returns the path."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def list_models(self) -> dict[str, list[int]]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> dict[str, list[int]]:
        if not self.root.is_dir():
            raise Unavailable(f"model repository {self.root} is not a folder")
        found: dict[str, list[int]] = {}
        for model_dir in sorted(self.root.iterdir()):
            if not model_dir.is_dir() or model_dir.name.startswith("."):
                continue
            versions = sorted(
                int(child.name)
                for child in model_dir.iterdir()
                if child.is_dir() and _is_version(child.name)
            )
            if versions:
                found[model_dir.name] = versions
        return found

    def version_dir(self, name: str, version: int) -> Path:
        check_model_name(name)
        path = self.root / name / str(version)
        # check_model_name keeps the name to one segment; this is the belt to its braces.
        if path.resolve().parent.parent != self.root:
            raise ModelNotFound(f"model {name!r} is not in the repository")
        return path

    async def read_manifest(self, name: str, version: int) -> Manifest:
        return await asyncio.to_thread(read_manifest, self.version_dir(name, version))

    async def fetch(self, name: str, version: int) -> Path:
        path = self.version_dir(name, version)
        if not await asyncio.to_thread(path.is_dir):
            if not await asyncio.to_thread((self.root / name).is_dir):
                raise ModelNotFound(f"model {name!r} is not in the repository")
            raise VersionNotFound(f"model {name!r} has no version {version}")
        return path

    async def files(self, name: str, version: int) -> dict[str, FileInfo]:
        # Hand-made folders carry no hashes: they are served as they are, unverified.
        path = await self.fetch(name, version)
        return await asyncio.to_thread(_folder_files, path)


def _folder_files(path: Path) -> dict[str, FileInfo]:
    return {
        item.relative_to(path).as_posix(): FileInfo(item.stat().st_size)
        for item in sorted(path.rglob("*"))
        if item.is_file()
    }


def _is_version(name: str) -> bool:
    """Versions are positive integers written in ASCII digits ("²" is a digit to str.isdigit)."""
    return name.isascii() and name.isdigit() and int(name) > 0
