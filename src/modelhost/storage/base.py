"""The ModelStore contract: where model versions live, seen as ``<name>/<version>/`` folders.

A store lists the models and versions it holds, records each version's files with their sizes
and sha256s (its *file index*), puts new versions (``modelhost models push``), copies a version
into a folder (``modelhost models pull``), and makes a version available as a local folder a
runtime can load from (``fetch``). Backends translate their own errors into modelhost errors
here, at this seam, and nowhere else: StorageError (503) when the backend fails or is out of
reach, ArtifactMismatch when bytes differ from their recorded sha256, ModelNotFound /
VersionNotFound when there is nothing to find, VersionExists when a push would overwrite.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelhost.errors import InvalidModelName
from modelhost.manifest import Manifest

if TYPE_CHECKING:
    from modelhost.storage.artifact_cache import ArtifactCache

# Names become folder (or key) names: keep them to one safe path segment. The pattern itself
# refuses "..", without a lookahead, so that the OpenAPI document can carry it and clients (and
# schema-driven fuzzers) that generate names from it only make names the server accepts.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*\.?$"
MODEL_NAME_MAX_LENGTH = 128
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)

# Told how many more bytes were moved; called on the event loop's thread.
Progress = Callable[[int], None]


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a safe single path segment, else raise InvalidModelName."""
    if len(name) > MODEL_NAME_MAX_LENGTH or not _MODEL_NAME.fullmatch(name):
        raise InvalidModelName(
            f"invalid model name {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, with no '..'"
        )
    return name


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file of a version: its size, and its sha256 where the store knows it."""

    size: int
    sha256: str | None = None

    def to_json(self) -> dict[str, int | str | None]:
        return {"size": self.size, "sha256": self.sha256}


@dataclass(eq=False)
class FetchedVersion:
    """A version's files in a local folder, held for a runtime until :meth:`release`.

    Holding it keeps the files where they are (the artifact cache never evicts them); release
    it once the model is unloaded or its load failed. The timings say where a fetch spent its
    time: ``download_seconds`` moving bytes (hashing them on the way, in the same pass) and
    ``verify_seconds`` checking what was already on disk and laying the folder out.
    """

    path: Path
    downloaded_bytes: int = 0
    download_seconds: float = 0.0
    verify_seconds: float = 0.0
    _on_release: Callable[[], None] | None = field(default=None, repr=False)

    def release(self) -> None:
        """Give the files back; safe to call more than once."""
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release()


@dataclass(frozen=True, slots=True)
class PushedVersion:
    """What a push stored: the version number it got and the index of its files."""

    name: str
    version: int
    files: dict[str, FileInfo]


class ModelStore(ABC):
    """Holds model versions; every method is async and never blocks the event loop."""

    #: Where the versions live: a folder path or ``s3://bucket/prefix``.
    uri: str
    #: The verified local copy of a remote store's files (None: the store is local already).
    artifact_cache: ArtifactCache | None = None

    @abstractmethod
    async def list_models(self) -> dict[str, list[int]]:
        """Every model name with its versions (positive integers), ascending."""

    @abstractmethod
    async def read_manifest(self, name: str, version: int) -> Manifest:
        """The version's parsed ``model.yaml``; raises InvalidManifest if it does not parse."""

    @abstractmethod
    async def files(self, name: str, version: int) -> dict[str, FileInfo]:
        """The version's files (paths relative to the version folder), with their sha256s
        where the version was pushed with an index."""

    @abstractmethod
    async def fetch(self, name: str, version: int) -> FetchedVersion:
        """A local folder holding the version's files, verified against their sha256s where
        they are recorded, ready for a runtime to load; release it when done."""

    @abstractmethod
    async def download(
        self, name: str, version: int, dest: Path, progress: Progress | None = None
    ) -> dict[str, FileInfo]:
        """Copy the version's files into the folder ``dest`` (created; must be empty), each
        checked against its recorded sha256; return the files with the sha256s computed."""

    @abstractmethod
    async def put_version(
        self,
        name: str,
        source: Path,
        *,
        version: int | None = None,
        aliases: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> PushedVersion:
        """Store the files of folder ``source`` as a new version of ``name`` (the highest
        stored version + 1 when ``version`` is None), hashing every file as it is read, and
        write its file index last so a version is listed only once it is whole. Raises
        VersionExists rather than overwrite a stored version."""

    async def size_bytes(self, name: str, version: int) -> int:
        """Total size of the version's files: the first estimate of its memory footprint."""
        return sum(info.size for info in (await self.files(name, version)).values())

    async def close(self) -> None:  # noqa: B027 - stores without connections hold nothing
        """Let go of connections and background work."""
