"""A version's file index: ``<name>/<version>/.modelhost/files.json``.

Written by a push, after every file it lists, so a version whose index exists is whole::

    {"format": 1,
     "files": {"model.onnx": {"size": 1234, "sha256": "9f86d0..."}},
     "aliases": ["prod"]}

The sha256s are what every later copy of the version is checked against. The paths come from
the store, so they are checked here before any of them becomes a path on local disk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from modelhost.errors import InvalidManifest
from modelhost.manifest import read_manifest
from modelhost.storage.base import FileInfo

INDEX_DIR = ".modelhost"
INDEX_PATH = f"{INDEX_DIR}/files.json"
_FORMAT = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def encode_index(files: dict[str, FileInfo], aliases: Sequence[str] = ()) -> bytes:
    document = {
        "format": _FORMAT,
        "files": {path: info.to_json() for path, info in sorted(files.items())},
        "aliases": sorted(set(aliases)),
    }
    return json.dumps(document, indent=1).encode()


def decode_index(data: bytes, *, source: str) -> dict[str, FileInfo]:
    """The files an index lists; raises InvalidManifest (naming ``source``) if it is malformed."""
    try:
        document = json.loads(data)
        if document.get("format") != _FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        files: dict[str, FileInfo] = {}
        for path, entry in document["files"].items():
            size, sha256 = entry["size"], entry["sha256"]
            if not isinstance(size, int) or size < 0:
                raise ValueError(f"{path}: size must be a non-negative integer")
            if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
                raise ValueError(f"{path}: sha256 must be 64 lowercase hex digits")
            files[check_relative_path(path)] = FileInfo(size, sha256)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidManifest(f"{source}: the file index is not valid: {exc}") from None
    return files


def check_relative_path(path: str) -> str:
    """``path`` if it names a file inside a version folder, else ValueError."""
    parts = PurePosixPath(path).parts
    if (
        not parts
        or path.startswith("/")
        or "\\" in path
        or any(part in ("", ".", "..") for part in parts)
        or parts[0] == INDEX_DIR
        or "/".join(parts) != path
    ):
        raise ValueError(f"{path!r} is not a plain relative path inside a version folder")
    return path


def source_files(folder: Path) -> dict[str, Path]:
    """The files a push of ``folder`` uploads, by relative path. Blocking: use a worker thread.

    Symbolic links are followed (the bytes are what is stored); the index folder is skipped, as
    a folder pulled or copied from a store may carry one.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    found: dict[str, Path] = {}
    for item in sorted(folder.rglob("*")):
        relative = item.relative_to(folder).as_posix()
        if relative == INDEX_DIR or relative.startswith(INDEX_DIR + "/") or not item.is_file():
            continue
        found[check_relative_path(relative)] = item
    return found


def checked_source(folder: Path) -> dict[str, tuple[Path, int]]:
    """What a push of ``folder`` uploads: relative path → (file, size), once its model.yaml is
    known to parse. Blocking: use a worker thread."""
    try:
        files = source_files(folder)
    except (OSError, ValueError) as exc:
        raise InvalidManifest(f"cannot push {folder}: {exc}") from None
    read_manifest(folder)  # raises InvalidManifest, naming the file and the key at fault
    return {path: (file, file.stat().st_size) for path, file in files.items()}
