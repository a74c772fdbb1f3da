"""The artifact cache: verified local copies of a remote store's files, on the pod's disk.

Layout under the cache folder::

    blobs/<sha256>              a file's bytes, named by their sha256
    tmp/                        downloads under way (emptied at start)
    views/<store>/<name>/<ver>/ a fetched version: its file names, as symlinks into blobs/

The contract:

- A blob gets its name only once its bytes were hashed (while they arrived) and matched the
  sha256 the store recorded; a mismatch is deleted and fetched once more, and a second one fails
  the fetch with an ArtifactMismatch naming the file and both hashes.
- Blobs are reused across restarts. A blob is trusted at start only once it is durable: synced
  to disk and then made read-only, by a background thread after the rename (so a cold load does
  not wait for the disk). A blob still writable at start may have been torn by a crash: dropped.
- The cache stays within ``limit`` bytes by evicting the least recently used blobs, never one
  pinned by a fetched version that is still held (a model loading or loaded). When pinned blobs
  leave no room, the fetch fails with StorageError rather than overfill the disk.
- Concurrent fetches of the same sha256 download it once (single flight).

All bookkeeping happens on the event loop; file work runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelhost.errors import StorageError
from modelhost.storage.base import FetchedVersion, FileInfo
from modelhost.storage.transfer import Stream, receive_verified
from modelhost.units import format_bytes

log = logging.getLogger(__name__)

_BLOB_NAME = re.compile(r"^[0-9a-f]{64}$")
# Files of one version fetched at once: several streams help a real S3, more only contend.
_PARALLEL_FILES = 4


@dataclass
class ArtifactCacheStats:
    """Counters since start."""

    hits: int = 0  # files found in the cache
    downloads: int = 0  # files fetched from the store
    downloaded_bytes: int = 0
    mismatches: int = 0  # copies whose sha256 was wrong (each deleted)
    evictions: int = 0
    evicted_bytes: int = 0


class ArtifactCache:
    """Content-addressed, size-limited, verified copies of store files."""

    def __init__(self, root: Path, limit: int) -> None:
        self.root = root.expanduser().resolve()
        self.limit = limit
        self.stats = ArtifactCacheStats()
        self.used_bytes = 0
        self._blobs_dir = self.root / "blobs"
        self._tmp_dir = self.root / "tmp"
        self._views_dir = self.root / "views"
        self._blobs: OrderedDict[str, int] = OrderedDict()  # sha256 → size, least recent first
        self._pins: Counter[str] = Counter()
        self._view_users: Counter[str] = Counter()
        self._reserved = 0  # room held for downloads under way
        self._inflight: dict[str, asyncio.Future[int]] = {}
        self._started = False
        self._start_lock = asyncio.Lock()
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelhost-cache-sync")

    def blob_path(self, sha256: str) -> Path:
        return self._blobs_dir / sha256

    async def fetch_version(
        self,
        key: str,
        files: dict[str, FileInfo],
        open_stream: Callable[[str], Stream],
        source: str,
    ) -> FetchedVersion:
        """The version ``key`` (``store/name/version``) as a folder of verified files.

        ``open_stream(path)`` opens a stream of one file's bytes in the store; ``source`` names
        the version in errors. The files stay pinned until the result is released.
        """
        await self._start()
        wanted = {path: _sha256(info, f"{source}/{path}") for path, info in files.items()}
        shas = list(wanted.values())
        self._pins.update(shas)
        self._view_users[key] += 1
        try:
            downloaded, download_seconds, verify_seconds = 0, 0.0, 0.0
            for _ in range(2):  # a second round only if blobs vanished from disk behind our back
                started = time.perf_counter()
                downloaded += await self._ensure_all(files, open_stream, source)
                download_seconds += time.perf_counter() - started
                started = time.perf_counter()
                view = self._views_dir / key
                missing = await asyncio.to_thread(
                    self._build_view, view, wanted, files, self._view_users[key] > 1
                )
                verify_seconds += time.perf_counter() - started
                if not missing:
                    break
                for sha in missing:
                    self.used_bytes -= self._blobs.pop(sha, 0)
            else:
                raise StorageError(f"files of {source} keep vanishing from {self._blobs_dir}")
        except BaseException:
            self._release(key, shas)
            raise
        return FetchedVersion(
            path=view,
            downloaded_bytes=downloaded,
            download_seconds=download_seconds,
            verify_seconds=verify_seconds,
            _on_release=lambda: self._release(key, shas),
        )

    async def close(self) -> None:
        """Wait for blobs being made durable."""
        await asyncio.to_thread(self._syncer.shutdown, wait=True)

    # -- fetching -----------------------------------------------------------------------------

    async def _ensure_all(
        self, files: dict[str, FileInfo], open_stream: Callable[[str], Stream], source: str
    ) -> int:
        limit = asyncio.Semaphore(_PARALLEL_FILES)

        async def ensure(path: str, info: FileInfo) -> int:
            sha = _sha256(info, path)
            if sha in self._blobs:
                self._blobs.move_to_end(sha)
                self.stats.hits += 1
                return 0
            async with limit:
                flight = self._inflight.get(sha)
                if flight is None:
                    what = f"{source}/{path}"
                    flight = asyncio.ensure_future(
                        self._download(sha, info.size, open_stream(path), what)
                    )
                    self._inflight[sha] = flight
                    flight.add_done_callback(self._landed)
                # Shielded: a request that gives up does not stop the download for the others.
                return await asyncio.shield(flight)

        unique = {info.sha256: (path, info) for path, info in files.items()}
        return sum(await asyncio.gather(*(ensure(p, i) for p, i in unique.values())))

    def _landed(self, flight: asyncio.Future[int]) -> None:
        for sha, other in list(self._inflight.items()):
            if other is flight:
                del self._inflight[sha]
        if not flight.cancelled():
            flight.exception()  # seen, even if every waiter gave up

    async def _download(self, sha: str, size: int, stream: Stream, what: str) -> int:
        await self._make_room(size, what)

        def mismatch(expected: str, got: str) -> None:
            self.stats.mismatches += 1
            log.warning("%s: sha256 %s, expected %s; deleted, fetching again", what, got, expected)

        try:
            received = await receive_verified(
                stream,
                self.blob_path(sha),
                self._tmp_dir / f"{sha}.{uuid.uuid4().hex}",
                expected_size=size,
                expected_sha256=sha,
                what=what,
                on_mismatch=mismatch,
            )
        finally:
            self._reserved -= size
        self._blobs[sha] = size
        self.used_bytes += size
        self.stats.downloads += 1
        self.stats.downloaded_bytes += received.size
        self._syncer.submit(_make_durable, self.blob_path(sha))
        return received.size

    async def _make_room(self, size: int, what: str) -> None:
        """Reserve ``size`` bytes, evicting least recently used unpinned blobs to fit them."""
        shortfall = self.used_bytes + self._reserved + size - self.limit
        victims: list[tuple[str, int]] = []
        freed = 0
        for sha, blob_size in self._blobs.items():  # least recently used first
            if freed >= shortfall:
                break
            if not self._pins[sha]:
                victims.append((sha, blob_size))
                freed += blob_size
        if shortfall > freed:
            pinned = sum(s for sha, s in self._blobs.items() if self._pins[sha])
            raise StorageError(
                f"the artifact cache at {self.root} has no room for {what} "
                f"({format_bytes(size)}): of its {format_bytes(self.limit)}, "
                f"{format_bytes(pinned)} hold files of loaded models and "
                f"{format_bytes(self._reserved)} downloads under way; raise MODELHOST_CACHE_SIZE"
            )
        # Booked before the first await, so concurrent downloads see each other's room taken.
        self._reserved += size
        for sha, blob_size in victims:
            del self._blobs[sha]
            self.used_bytes -= blob_size
            self.stats.evictions += 1
            self.stats.evicted_bytes += blob_size
        if victims:
            await asyncio.to_thread(_unlink_all, [self.blob_path(sha) for sha, _ in victims])

    def _release(self, key: str, shas: list[str]) -> None:
        self._pins.subtract(shas)
        self._pins = +self._pins  # drop the zero counts
        self._view_users[key] -= 1
        if self._view_users[key] <= 0:
            del self._view_users[key]

    # -- disk work (worker threads) -------------------------------------------------------------

    def _build_view(
        self, view: Path, wanted: dict[str, str], files: dict[str, FileInfo], in_use: bool
    ) -> list[str]:
        """Lay the version out as symlinks into blobs/; return blobs found missing instead."""
        missing = []
        for path, sha in wanted.items():
            blob = self.blob_path(sha)
            try:
                if blob.stat().st_size != files[path].size:
                    raise FileNotFoundError(blob)
                os.utime(blob)  # the recency order a restart reads back
            except OSError:
                missing.append(sha)
        if missing:
            with contextlib.suppress(OSError):
                for sha in missing:
                    self.blob_path(sha).unlink(missing_ok=True)
            return missing
        if in_use:
            return []  # another holder of this version is using the same, still valid, view
        if view.exists():
            shutil.rmtree(view)
        for path, sha in wanted.items():
            link = view / path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(self.blob_path(sha))
        return []

    async def _start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            try:
                found = await asyncio.to_thread(self._scan)
            except OSError as exc:
                raise StorageError(f"artifact cache at {self.root}: {exc}") from None
            for sha, size in found:
                self._blobs[sha] = size
                self.used_bytes += size
            self._started = True
            if self.used_bytes > self.limit:  # the limit was lowered since the last run
                await self._make_room(0, "the blobs kept from the last run")

    def _scan(self) -> list[tuple[str, int]]:
        """Durable blobs on disk, least recently used first; everything else is removed."""
        for folder in (self._tmp_dir, self._views_dir):
            shutil.rmtree(folder, ignore_errors=True)
        for folder in (self._blobs_dir, self._tmp_dir, self._views_dir):
            folder.mkdir(parents=True, exist_ok=True)
        found: list[tuple[float, str, int]] = []
        for entry in os.scandir(self._blobs_dir):
            stat = entry.stat(follow_symlinks=False)
            if _BLOB_NAME.fullmatch(entry.name) and entry.is_file() and not stat.st_mode & 0o222:
                found.append((stat.st_mtime, entry.name, stat.st_size))
            else:  # not ours, or not known to have reached the disk whole
                os.unlink(entry.path)
        return [(sha, size) for _, sha, size in sorted(found)]


def _sha256(info: FileInfo, what: str) -> str:
    if info.sha256 is None:
        raise StorageError(f"{what} has no recorded sha256: nothing to verify a copy against")
    return info.sha256


def _make_durable(path: Path) -> None:
    """Sync a blob's bytes to disk, then mark it read-only: durable, and safe from writers."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # evicted before its turn came
    try:
        os.fsync(fd)
        os.fchmod(fd, 0o444)
    except OSError as exc:
        log.warning("could not make %s durable; a restart fetches it again: %s", path, exc)
    finally:
        os.close(fd)


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
