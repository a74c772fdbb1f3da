"""Parallel ranged GETs from S3 (moto on loopback): each part at its offset, the whole file
verified against its sha256, a failed part fetched again alone, and the artifact cache's
guarantees (verified, content-addressed, kept across restarts, corrupt copies refused)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.errors import ArtifactMismatch, StorageError
from modelhost.storage.artifact_cache import ArtifactCache
from modelhost.storage.s3 import S3ModelStore
from tests.storage.conftest import BUCKET
from tests.storage.helpers import push, sha256_of, write_weights_model
from tests.storage.proxy import ThrottledProxy
from tests.storage.s3server import CREDENTIALS, MotoServer

MiB = 1 << 20
PART = 1 * MiB
SIZE = 5 * MiB + 12345  # six parts, the last one short
KEY = "weights/1/weights.bin"


@pytest.fixture
def pushed(tmp_path: Path, moto: MotoServer, s3_repository: str) -> Path:
    source = write_weights_model(tmp_path / "src", "weights", SIZE)
    push(source, "weights", s3_repository, moto.env())
    return source


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[ThrottledProxy]:
    server = ThrottledProxy(moto.port, rate=1 << 40)
    yield server
    server.close()


def sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store(endpoint: str, cache: Path, s3_repository: str, concurrency: int = 4) -> S3ModelStore:
    return S3ModelStore(
        s3_repository,
        ArtifactCache(cache, 1 << 30),
        endpoint=endpoint,
        region=CREDENTIALS["AWS_REGION"],
        part_bytes=PART,
        concurrency=concurrency,
    )


def fetch_weights(s3: S3ModelStore) -> tuple[bytes, Path]:
    """The fetched weights' bytes and the blob they are, then the store is closed."""

    async def run() -> tuple[bytes, Path]:
        try:
            fetched = await s3.fetch("weights", 1)
            try:
                path = fetched.path / "weights.bin"
                return path.read_bytes(), path.resolve()
            finally:
                fetched.release()
        finally:
            await s3.close()

    return asyncio.run(run())


def test_a_big_file_arrives_in_parallel_parts_verified_and_kept_across_restarts(
    tmp_path: Path, moto: MotoServer, s3_repository: str, pushed: Path
) -> None:
    data, blob = fetch_weights(store(moto.endpoint, tmp_path / "cache", s3_repository))
    assert data == (pushed / "weights.bin").read_bytes()
    # Content-addressed, read-only once durable (the cache's sync thread ran before close).
    assert blob.name == sha256_of(pushed / "weights.bin")
    assert not os.stat(blob).st_mode & 0o222
    assert moto.gets(KEY) == 6  # one ranged GET per part, none repeated
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []

    # A restart finds the file and fetches nothing.
    again, _ = fetch_weights(store(moto.endpoint, tmp_path / "cache", s3_repository))
    assert again == data
    assert moto.gets(KEY) == 6


def test_a_failed_part_is_fetched_again_alone(
    tmp_path: Path,
    moto: MotoServer,
    proxy: ThrottledProxy,
    s3_repository: str,
    pushed: Path,
) -> None:
    # Connections after the first two (the index and model.yaml reads) are cut once 300 KiB of
    # their response went through: two of the six parts fail halfway.
    s3 = store(proxy.endpoint, tmp_path / "cache", s3_repository)
    asyncio.run(s3.files("weights", 1))
    proxy.cut(2, after=300 << 10)
    data, blob = fetch_weights(s3)
    assert data == (pushed / "weights.bin").read_bytes()
    assert blob.name == sha256_of(pushed / "weights.bin")
    assert proxy.cuts == 2
    # Six parts and two second tries; a whole-file retry would have made twelve or more.
    assert moto.gets(KEY) == 8


def test_a_part_that_keeps_failing_fails_the_fetch_and_leaves_nothing(
    tmp_path: Path,
    moto: MotoServer,
    proxy: ThrottledProxy,
    s3_repository: str,
    pushed: Path,
) -> None:
    s3 = store(proxy.endpoint, tmp_path / "cache", s3_repository, concurrency=1)
    asyncio.run(s3.files("weights", 1))
    # Every response is cut before its first byte: no attempt at the first part gets anywhere.
    proxy.cut(1 << 30, after=0)
    with pytest.raises(StorageError, match=r"S3 storage failed: GET .*weights\.bin bytes 0-"):
        fetch_weights(s3)
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    assert not (tmp_path / "cache" / "blobs" / sha256_of(pushed / "weights.bin")).exists()


def test_an_object_changed_behind_its_back_is_refused_after_a_second_download(
    tmp_path: Path, moto: MotoServer, s3_repository: str, pushed: Path
) -> None:
    recorded = sha256_of(pushed / "weights.bin")
    tampered = bytearray((pushed / "weights.bin").read_bytes())
    tampered[3 * PART + 7] ^= 0xFF  # one byte, in the fourth part: same size, other sha256
    moto.put(BUCKET, f"repo/{KEY}", bytes(tampered))
    with pytest.raises(ArtifactMismatch, match=recorded):
        fetch_weights(store(moto.endpoint, tmp_path / "cache", s3_repository))
    assert moto.gets(KEY) == 12  # fetched whole twice, then refused
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    blobs = {path.name for path in (tmp_path / "cache" / "blobs").iterdir()}
    assert recorded not in blobs and sha256_of_bytes(bytes(tampered)) not in blobs


def test_pull_fetches_in_parallel_parts_too(
    tmp_path: Path, moto: MotoServer, s3_repository: str, pushed: Path
) -> None:
    s3 = store(moto.endpoint, tmp_path / "cache", s3_repository)

    async def pull() -> None:
        try:
            await s3.download("weights", 1, tmp_path / "pulled")
        finally:
            await s3.close()

    asyncio.run(pull())
    assert (tmp_path / "pulled" / "weights.bin").read_bytes() == (
        pushed / "weights.bin"
    ).read_bytes()
    assert moto.gets(KEY) == 6
