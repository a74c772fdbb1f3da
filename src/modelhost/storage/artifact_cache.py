"""The artifact cache: verified local copies of a remote store's files, on the pod's disk.

Its folder's layout is :mod:`storage.cache_folder`'s. The contract:

- A file is stored under its sha256 only once its bytes were hashed (while they arrived) and
  matched the sha256 the store recorded; a mismatch is deleted and fetched once more, and a
  second one fails the fetch with an ArtifactMismatch naming the file and both hashes.
- Files are reused across restarts. A file is trusted at start only once it is durable: synced
  to disk and then made read-only by a background thread after the rename, so a cold load does
  not wait for the disk, and a crash never leaves a torn file that looks verified.
- The cache stays within ``limit`` bytes by evicting the least recently used files, never one
  pinned by a fetched version that is still held (a model loading or loaded). When pinned files
  leave no room, the fetch fails with StorageError rather than overfill the disk.
- Concurrent fetches of the same sha256 download it once (single flight).
- One process per cache folder (it clears tmp/ and views/ at start): a second one is refused.

The bookkeeping happens on the event loop, with no await between a check and the change it
guards; disk work runs in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelhost.cache.accounting import ByteBudget
from modelhost.errors import StorageError
from modelhost.storage.base import FetchedVersion, FileInfo
from modelhost.storage.cache_folder import CacheFolder
from modelhost.storage.transfer import Source, receive_verified
from modelhost.units import format_bytes

log = logging.getLogger(__name__)

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
        self.stats = ArtifactCacheStats()
        self._folder = CacheFolder(self.root)
        # sha256 → size, least recently used first; ``reserved``: room for downloads under way.
        self._blobs: ByteBudget[str] = ByteBudget(limit)
        self._pins: Counter[str] = Counter()
        self._view_users: Counter[str] = Counter()
        self._inflight: dict[str, asyncio.Future[int]] = {}
        self._started = False
        self._start_lock = asyncio.Lock()
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelhost-cache-sync")

    @property
    def limit(self) -> int:
        return self._blobs.limit

    @property
    def used_bytes(self) -> int:
        return self._blobs.used

    async def fetch_version(
        self,
        key: str,
        files: dict[str, FileInfo],
        open_stream: Callable[[str], Source],
        source: str,
    ) -> FetchedVersion:
        """The version ``key`` (``store/name/version``) as a folder of verified files.

        ``open_stream(path)`` opens a stream of one file's bytes in the store; ``source`` names
        the version in errors. The files stay pinned until the result is released.
        """
        await self._start()
        wanted = {
            path: (_sha256(info, f"{source}/{path}"), info.size) for path, info in files.items()
        }
        shas = [sha for sha, _ in wanted.values()]
        self._pins.update(shas)
        self._view_users[key] += 1
        try:
            downloaded, download_seconds, verify_seconds = 0, 0.0, 0.0
            for _ in range(2):  # a second round only if files vanished from disk behind our back
                started = time.perf_counter()
                downloaded += await self._ensure_all(files, open_stream, source)
                download_seconds += time.perf_counter() - started
                started = time.perf_counter()
                reuse = self._view_users[key] > 1
                view, missing = await asyncio.to_thread(self._folder.build_view, key, wanted, reuse)
                verify_seconds += time.perf_counter() - started
                if not missing:
                    break
                for sha in missing:
                    self._blobs.remove(sha)
            else:
                raise StorageError(f"files of {source} keep vanishing from {self.root}")
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
        """Wait for files being made durable, then let the folder go."""
        await asyncio.to_thread(self._syncer.shutdown, wait=True)
        self._folder.unlock()

    # -- fetching -------------------------------------------------------------------------------

    async def _ensure_all(
        self, files: dict[str, FileInfo], open_stream: Callable[[str], Source], source: str
    ) -> int:
        """Make every file present; return the bytes this call downloaded."""
        limit = asyncio.Semaphore(_PARALLEL_FILES)

        async def ensure(path: str, info: FileInfo) -> int:
            sha = _sha256(info, path)
            if sha in self._blobs:
                self._blobs.use(sha)
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

    async def _download(self, sha: str, size: int, stream: Source, what: str) -> int:
        await self._make_room(size, what)

        def mismatch(expected: str, got: str) -> None:
            self.stats.mismatches += 1
            log.warning("%s: sha256 %s, expected %s; deleted, fetching again", what, got, expected)

        try:
            received = await receive_verified(
                stream,
                self._folder.blob(sha),
                self._folder.temp(sha),
                expected_size=size,
                expected_sha256=sha,
                what=what,
                on_mismatch=mismatch,
            )
        finally:
            self._blobs.reserved -= size
        self._blobs.add(sha, size)
        self.stats.downloads += 1
        self.stats.downloaded_bytes += received.size
        self._syncer.submit(self._folder.make_durable, sha)
        return received.size

    async def _make_room(self, size: int, what: str) -> None:
        """Reserve ``size`` bytes, evicting least recently used unpinned files to fit them."""
        victims = self._blobs.victims(self._blobs.shortfall(size), lambda sha: not self._pins[sha])
        if victims is None:
            pinned = sum(s for sha, s in self._blobs.items() if self._pins[sha])
            raise StorageError(
                f"the artifact cache at {self.root} has no room for {what} "
                f"({format_bytes(size)}): of its {format_bytes(self.limit)}, "
                f"{format_bytes(pinned)} hold files of loaded models and "
                f"{format_bytes(self._blobs.reserved)} downloads under way; "
                "raise MODELHOST_CACHE_SIZE"
            )
        # Booked before the first await, so concurrent downloads see each other's room taken.
        self._blobs.reserved += size
        for sha in victims:
            self.stats.evictions += 1
            self.stats.evicted_bytes += self._blobs.remove(sha, evicted=True)
        if victims:
            await asyncio.to_thread(self._folder.remove, victims)

    def _release(self, key: str, shas: list[str]) -> None:
        self._pins.subtract(shas)
        self._pins = +self._pins  # drop the zero counts
        self._view_users[key] -= 1
        if self._view_users[key] <= 0:
            del self._view_users[key]

    async def _start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            try:
                found = await asyncio.to_thread(self._folder.claim)
            except OSError as exc:
                raise StorageError(f"artifact cache at {self.root}: {exc}") from None
            for sha, size in found:
                self._blobs.add(sha, size)
            self._started = True
            if self.used_bytes > self.limit:  # the limit was lowered since the last run
                await self._make_room(0, "the files kept from the last run")


def _sha256(info: FileInfo, what: str) -> str:
    if info.sha256 is None:
        raise StorageError(f"{what} has no recorded sha256: nothing to verify a copy against")
    return info.sha256
