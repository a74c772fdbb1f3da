"""The artifact cache's folder on disk, and the blocking work done in it (worker threads only)::

    lock                        flock'd by the one process that uses the folder
    blobs/<sha256>              a file's bytes, named by their sha256; read-only once durable
    tmp/                        downloads under way (emptied at start)
    views/<store>/<name>/<ver>/ a fetched version: its file names, as symlinks into blobs/

A blob is *durable* once its bytes were synced to disk and it was then made read-only; only
durable blobs are trusted after a restart (a writable one may have been torn by a crash).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import uuid
from pathlib import Path

from modelhost.errors import StorageError

log = logging.getLogger(__name__)

_BLOB_NAME = re.compile(r"^[0-9a-f]{64}$")


class CacheFolder:
    """Paths and disk operations of one cache folder; every method blocks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.tmp = root / "tmp"
        self.views = root / "views"
        self._lock: int | None = None

    def blob(self, sha256: str) -> Path:
        return self.blobs / sha256

    def temp(self, sha256: str) -> Path:
        return self.tmp / f"{sha256}.{uuid.uuid4().hex}"

    def claim(self) -> list[tuple[str, int]]:
        """Lock the folder for this process, clear what a previous run left half done, and
        return the durable blobs (sha256, size), least recently used first."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise StorageError(
                f"the artifact cache at {self.root} is in use by another process; "
                "give each server its own MODELHOST_CACHE_DIR"
            ) from None
        self._lock = lock
        for folder in (self.tmp, self.views):
            shutil.rmtree(folder, ignore_errors=True)
        for folder in (self.blobs, self.tmp, self.views):
            folder.mkdir(parents=True, exist_ok=True)
        found: list[tuple[float, str, int]] = []
        for entry in os.scandir(self.blobs):
            stat = entry.stat(follow_symlinks=False)
            if _BLOB_NAME.fullmatch(entry.name) and entry.is_file() and not stat.st_mode & 0o222:
                found.append((stat.st_mtime, entry.name, stat.st_size))
            else:  # not ours, or not known to have reached the disk whole
                os.unlink(entry.path)
        return [(sha, size) for _, sha, size in sorted(found)]

    def unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None

    def build_view(
        self, key: str, wanted: dict[str, tuple[str, int]], reuse: bool
    ) -> tuple[Path, list[str]]:
        """Lay version ``key`` out as symlinks (path → (sha256, size) in ``wanted``) into
        blobs/. Returns the view, and the blobs found missing or wrong instead, if any (they
        are deleted). ``reuse``: another holder is using the view, which is then left as is."""
        view = self.views / key
        missing = []
        for sha, size in wanted.values():
            blob = self.blob(sha)
            try:
                if blob.stat().st_size != size:
                    raise FileNotFoundError(blob)
                os.utime(blob)  # the recency order a restart reads back
            except OSError:
                missing.append(sha)
        if missing:
            self.remove(missing)
            return view, missing
        if reuse:
            return view, []
        if view.exists():
            shutil.rmtree(view)
        for path, (sha, _) in wanted.items():
            link = view / path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(self.blob(sha))
        return view, []

    def remove(self, shas: list[str]) -> None:
        for sha in shas:
            with contextlib.suppress(OSError):
                self.blob(sha).unlink(missing_ok=True)

    def make_durable(self, sha256: str) -> None:
        """Sync a blob's bytes to disk, then make it read-only: durable, and safe from writers."""
        try:
            fd = os.open(self.blob(sha256), os.O_RDONLY)
        except FileNotFoundError:
            return  # evicted before its turn came
        try:
            os.fsync(fd)
            os.fchmod(fd, 0o444)
        except OSError as exc:
            log.warning(
                "could not make blob %s durable; a restart fetches it again: %s", sha256, exc
            )
        finally:
            os.close(fd)
