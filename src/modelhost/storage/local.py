"""A model store that is a folder on local disk, laid out as ``<root>/<name>/<version>/``.

Versions are served in place: nothing is copied and nothing is hashed at load, because the
folder is this machine's own disk and hashing a big model at every load would cost more than
reading it. A version pushed here carries a file index (``.modelhost/files.json``); then a fetch
checks that every indexed file is there with its recorded size, and a pull checks sha256s.
Hand-made folders have no index and are served as they are.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from modelhost.errors import (
    ArtifactMismatch,
    ModelNotFound,
    StorageError,
    Unavailable,
    VersionNotFound,
)
from modelhost.manifest import Manifest, read_manifest
from modelhost.storage.base import (
    FetchedVersion,
    FileInfo,
    ModelStore,
    Progress,
    PushedVersion,
    check_model_name,
)
from modelhost.storage.index import (
    INDEX_DIR,
    INDEX_PATH,
    decode_index,
    encode_index,
)
from modelhost.storage.push import plan_push, version_exists
from modelhost.storage.transfer import download_version, file_stream, receive_verified


class LocalModelStore(ModelStore):
    """Versions in a folder; fetch returns the version's own folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.uri = str(self.root)

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

    async def _existing(self, name: str, version: int) -> Path:
        path = self.version_dir(name, version)
        if not await asyncio.to_thread(path.is_dir):
            if not await asyncio.to_thread((self.root / name).is_dir):
                raise ModelNotFound(f"model {name!r} is not in the repository")
            raise VersionNotFound(f"model {name!r} has no version {version}")
        return path

    async def files(self, name: str, version: int) -> dict[str, FileInfo]:
        path = await self._existing(name, version)
        return await asyncio.to_thread(_index_or_scan, path)

    async def fetch(self, name: str, version: int) -> FetchedVersion:
        path = await self._existing(name, version)
        started = time.perf_counter()
        await asyncio.to_thread(_check_sizes, path)
        return FetchedVersion(path, verify_seconds=time.perf_counter() - started)

    async def download(
        self, name: str, version: int, dest: Path, progress: Progress | None = None
    ) -> dict[str, FileInfo]:
        path = await self._existing(name, version)
        index = await asyncio.to_thread(_index_or_scan, path)
        return await download_version(
            index,
            lambda file: file_stream(path / file),
            lambda file: str(path / file),
            dest,
            progress,
        )

    async def put_version(
        self,
        name: str,
        source: Path,
        *,
        version: int | None = None,
        aliases: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> PushedVersion:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)  # to list it
        plan = await plan_push(self, name, source, version)
        version = plan.version
        target = self.version_dir(name, version)
        # Copied into a hidden folder and renamed whole: a version appears complete or not at all.
        staging = self.root / name / f".push-{version}-{uuid.uuid4().hex}"
        index: dict[str, FileInfo] = {}
        try:
            for number, (relative, (file, size)) in enumerate(plan.files.items()):
                received = await receive_verified(
                    file_stream(file),
                    staging / relative,
                    staging / INDEX_DIR / "partial" / str(number),
                    expected_size=size,
                    expected_sha256=None,
                    what=str(file),
                    progress=progress,
                )
                index[relative] = FileInfo(received.size, received.sha256)
            await asyncio.to_thread(_commit, staging, target, encode_index(index, aliases))
        except FileExistsError:
            raise version_exists(self, name, version) from None
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        return PushedVersion(name, version, index)


def _commit(staging: Path, target: Path, index: bytes) -> None:
    shutil.rmtree(staging / INDEX_DIR / "partial", ignore_errors=True)
    (staging / INDEX_PATH).write_bytes(index)
    try:
        target.mkdir()  # claims the version number; fails if another push got there first
    except FileExistsError:
        raise  # the caller names the version
    except OSError as exc:
        raise StorageError(f"cannot create {target}: {exc.strerror}") from None
    os.replace(staging, target)  # onto the empty folder just claimed


def _index_or_scan(path: Path) -> dict[str, FileInfo]:
    """The version's file index if it has one, else its files with no hashes."""
    index = path / INDEX_PATH
    if index.is_file():
        return decode_index(index.read_bytes(), source=str(index))
    return {
        relative: FileInfo(item.stat().st_size)
        for item in sorted(path.rglob("*"))
        if item.is_file()
        and not (relative := item.relative_to(path).as_posix()).startswith(INDEX_DIR + "/")
    }


def _check_sizes(path: Path) -> None:
    """Each indexed file present with its recorded size (cheap: no hashing at load)."""
    index = path / INDEX_PATH
    if not index.is_file():
        return  # a hand-made folder: served as it is
    for relative, info in decode_index(index.read_bytes(), source=str(index)).items():
        try:
            size = (path / relative).stat().st_size
        except FileNotFoundError:
            raise ArtifactMismatch(f"{path / relative} is missing; {index} lists it") from None
        if size != info.size:
            raise ArtifactMismatch(
                f"{path / relative} is {size} bytes but {index} records {info.size} "
                f"(sha256 {info.sha256}): the file changed since it was pushed"
            )


def _is_version(name: str) -> bool:
    """Versions are positive integers written in ASCII digits ("²" is a digit to str.isdigit)."""
    return name.isascii() and name.isdigit() and int(name) > 0
