"""The artifact cache on a real local folder: eviction, pins, temp + rename, mismatches, restarts.

The "store" here is a dict of bytes served as streams, counting how often each file is opened.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import Counter
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from modelhost.errors import ArtifactMismatch, StorageError
from modelhost.storage.artifact_cache import ArtifactCache
from modelhost.storage.base import FetchedVersion, FileInfo
from modelhost.storage.transfer import Chunk, Stream

KiB = 1 << 10


class FakeRemote:
    """Files by path; ``served`` overrides what a stream yields (a corrupt copy, a failure)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.served: dict[str, list[bytes | Exception]] = {}
        self.opened: Counter[str] = Counter()
        self.delay = 0.0

    def index(self, *paths: str) -> dict[str, FileInfo]:
        return {
            path: FileInfo(len(self.files[path]), hashlib.sha256(self.files[path]).hexdigest())
            for path in paths
        }

    def open(self, path: str) -> Stream:
        async def chunks() -> AsyncGenerator[Chunk, None]:
            self.opened[path] += 1
            await asyncio.sleep(self.delay)
            queued = self.served.get(path)
            data = queued.pop(0) if queued else self.files[path]
            if isinstance(data, Exception):
                yield b"partial bytes"
                raise data
            for start in range(0, len(data), 1000):
                yield data[start : start + 1000]

        return chunks


def fetch(cache: ArtifactCache, remote: FakeRemote, key: str, *paths: str) -> FetchedVersion:
    return asyncio.run(cache.fetch_version(key, remote.index(*paths), remote.open, f"test/{key}"))


async def use(cache: ArtifactCache, remote: FakeRemote, name: str) -> None:
    """Fetch the one-file version ``name`` and let it go (a model loaded, then unloaded)."""
    (await cache.fetch_version(f"s/{name}/1", remote.index(name), remote.open, name)).release()


def blobs(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").iterdir()}


def test_a_fetched_version_is_a_folder_of_verified_read_only_files(tmp_path: Path) -> None:
    remote = FakeRemote({"model.yaml": b"runtime: python\n", "w/weights.bin": os.urandom(5 * KiB)})
    cache = ArtifactCache(tmp_path / "cache", limit=1 << 20)

    async def scenario() -> FetchedVersion:
        fetched = await cache.fetch_version(
            "s/m/1", remote.index("model.yaml", "w/weights.bin"), remote.open, "test/m/1"
        )
        await cache.close()  # waits for the blobs to be made durable
        return fetched

    fetched = asyncio.run(scenario())
    for path, data in remote.files.items():
        assert (fetched.path / path).read_bytes() == data
        blob = (fetched.path / path).resolve()
        assert blob.name == hashlib.sha256(data).hexdigest()
        assert not blob.stat().st_mode & 0o222  # durable, and no model can write into it
    assert fetched.downloaded_bytes == sum(len(d) for d in remote.files.values())
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    assert cache.used_bytes == fetched.downloaded_bytes


def test_least_recently_used_files_are_evicted_by_size_and_pinned_ones_never(
    tmp_path: Path,
) -> None:
    remote = FakeRemote({name: os.urandom(4 * KiB) for name in "abcde"})
    sha = {name: info.sha256 for name, info in remote.index(*"abcde").items()}
    cache = ArtifactCache(tmp_path / "cache", limit=12 * KiB)  # room for three files

    async def scenario() -> None:
        held = await cache.fetch_version("s/a/1", remote.index("a"), remote.open, "a")
        for name in "bc":
            await use(cache, remote, name)
        # "a" is the least recently used, but it is held (a loaded model): "b" goes instead.
        await use(cache, remote, "d")
        assert blobs(cache.root) == {sha["a"], sha["c"], sha["d"]}
        assert cache.stats.evictions == 1
        held.release()
        # Using "c" again makes "a" the least recently used.
        await use(cache, remote, "c")
        await use(cache, remote, "e")
        assert blobs(cache.root) == {sha["c"], sha["d"], sha["e"]}
        assert cache.used_bytes == 12 * KiB
        assert remote.opened["c"] == 1  # the second fetch of "c" was a hit

    asyncio.run(scenario())


def test_no_room_beside_pinned_files_is_an_error_not_an_overfull_disk(tmp_path: Path) -> None:
    remote = FakeRemote({name: os.urandom(4 * KiB) for name in "abc"})
    cache = ArtifactCache(tmp_path / "cache", limit=10 * KiB)

    async def scenario() -> None:
        held = [
            await cache.fetch_version(f"s/{n}/1", remote.index(n), remote.open, n) for n in "ab"
        ]
        with pytest.raises(StorageError, match="no room for c"):
            await cache.fetch_version("s/c/1", remote.index("c"), remote.open, "c")
        held[0].release()
        await use(cache, remote, "c")

    asyncio.run(scenario())
    assert cache.used_bytes <= 10 * KiB


def test_a_bad_copy_is_deleted_and_fetched_once_more(tmp_path: Path) -> None:
    good = os.urandom(3 * KiB)
    remote = FakeRemote({"weights.bin": good})
    remote.served["weights.bin"] = [b"\0" * (3 * KiB)]
    cache = ArtifactCache(tmp_path / "cache", limit=1 << 20)
    fetched = fetch(cache, remote, "s/m/1", "weights.bin")
    assert (fetched.path / "weights.bin").read_bytes() == good
    assert remote.opened["weights.bin"] == 2
    assert cache.stats.mismatches == 1


def test_two_bad_copies_fail_naming_the_file_and_both_hashes(tmp_path: Path) -> None:
    remote = FakeRemote({"weights.bin": os.urandom(3 * KiB)})
    bad = b"\1" * (3 * KiB)
    remote.served["weights.bin"] = [bad, bad]
    cache = ArtifactCache(tmp_path / "cache", limit=1 << 20)
    with pytest.raises(ArtifactMismatch) as raised:
        fetch(cache, remote, "s/m/1", "weights.bin")
    message = raised.value.message
    assert "test/s/m/1/weights.bin" in message
    assert remote.index("weights.bin")["weights.bin"].sha256 in message
    assert hashlib.sha256(bad).hexdigest() in message
    assert blobs(cache.root) == set()
    assert list((cache.root / "tmp").iterdir()) == []
    assert cache.used_bytes == 0


def test_a_failed_download_leaves_nothing_behind(tmp_path: Path) -> None:
    remote = FakeRemote({"weights.bin": os.urandom(3 * KiB)})
    remote.served["weights.bin"] = [StorageError("S3 storage failed: connection reset")]
    cache = ArtifactCache(tmp_path / "cache", limit=1 << 20)
    with pytest.raises(StorageError, match="connection reset"):
        fetch(cache, remote, "s/m/1", "weights.bin")
    assert blobs(cache.root) == set() and list((cache.root / "tmp").iterdir()) == []
    # Nothing is pinned or reserved by the failure: the next fetch works and fills the cache.
    fetch(cache, remote, "s/m/1", "weights.bin").release()
    assert cache.used_bytes == 3 * KiB


def test_concurrent_fetches_of_one_file_download_it_once(tmp_path: Path) -> None:
    data = os.urandom(64 * KiB)
    remote = FakeRemote({"weights.bin": data, "other.bin": data})
    remote.delay = 0.05
    cache = ArtifactCache(tmp_path / "cache", limit=1 << 20)

    async def scenario() -> list[FetchedVersion]:
        return list(
            await asyncio.gather(
                *(
                    cache.fetch_version(
                        f"s/m{i}/1", remote.index("weights.bin", "other.bin"), remote.open, "m"
                    )
                    for i in range(8)
                )
            )
        )

    fetched = asyncio.run(scenario())
    assert sum(remote.opened.values()) == 1  # one download for two paths in eight versions
    assert all((f.path / "other.bin").read_bytes() == data for f in fetched)


def test_blobs_are_reused_after_a_restart_unless_they_may_be_torn(tmp_path: Path) -> None:
    remote = FakeRemote({"a": os.urandom(2 * KiB), "b": os.urandom(2 * KiB)})
    root = tmp_path / "cache"
    first = ArtifactCache(root, limit=1 << 20)

    async def fill() -> None:
        for name in "ab":
            await use(first, remote, name)
        await first.close()

    asyncio.run(fill())
    # A blob that was never made durable (a crash before its sync) must not be trusted.
    torn = root / "blobs" / remote.index("b")["b"].sha256
    torn.chmod(0o644)
    (root / "tmp" / "leftover.partial").write_bytes(b"half a file")

    second = ArtifactCache(root, limit=1 << 20)
    for name in "ab":
        fetched = fetch(second, remote, f"s/{name}/1", name)
        assert (fetched.path / name).read_bytes() == remote.files[name]
    assert remote.opened == Counter({"a": 1, "b": 2})
    assert second.stats.hits == 1 and second.stats.downloads == 1
    assert list((root / "tmp").iterdir()) == []


def test_one_process_per_cache_folder(tmp_path: Path) -> None:
    remote = FakeRemote({"a": os.urandom(KiB)})
    first = ArtifactCache(tmp_path / "cache", limit=1 << 20)
    second = ArtifactCache(tmp_path / "cache", limit=1 << 20)
    fetch(first, remote, "s/a/1", "a")
    with pytest.raises(StorageError, match="in use by another process"):
        fetch(second, remote, "s/a/1", "a")
