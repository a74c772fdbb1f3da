"""The ModelStore contract: where model versions live, seen as ``<name>/<version>/`` folders.

A store lists the models and versions it holds, and makes one version available as a local
folder a runtime can load from. Backends translate their own errors into modelhost errors here,
at this seam, and nowhere else.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from modelhost.errors import InvalidModelName
from modelhost.registry.manifest import Manifest

# Names become folder (or key) names: keep them to one safe path segment.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a safe single path segment, else raise InvalidModelName."""
    if not _MODEL_NAME.fullmatch(name) or ".." in name:
        raise InvalidModelName(
            f"invalid model name {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file of a version: its size, and its sha256 where the store knows it."""

    size: int
    sha256: str | None = None

    def to_json(self) -> dict[str, int | str | None]:
        return {"size": self.size, "sha256": self.sha256}


class ModelStore(ABC):
    """Holds model versions; every method is async and never blocks the event loop."""

    @abstractmethod
    async def list_models(self) -> dict[str, list[int]]:
        """Every model name with its versions (positive integers), ascending."""

    @abstractmethod
    async def read_manifest(self, name: str, version: int) -> Manifest:
        """The version's parsed ``model.yaml``; raises InvalidManifest if it does not parse."""

    @abstractmethod
    async def fetch(self, name: str, version: int) -> Path:
        """A local folder holding the version's files, ready for a runtime to load."""

    @abstractmethod
    async def files(self, name: str, version: int) -> dict[str, FileInfo]:
        """The version's files (paths relative to the version folder), for the registry."""

    async def size_bytes(self, name: str, version: int) -> int:
        """Total size of the version's files: the first estimate of its memory footprint."""
        return sum(info.size for info in (await self.files(name, version)).values())
