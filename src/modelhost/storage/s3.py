"""A model store in an S3 bucket, or any S3-compatible endpoint: ``s3://bucket/prefix``.

Versions live under ``<prefix>/<name>/<version>/`` with their file index at
``.modelhost/files.json`` (see :mod:`storage.index`); a version is listed only once its index
exists, which a push writes last. Fetches go through the :class:`ArtifactCache`: every file is
hashed as it arrives and checked against the index before a runtime sees it.

The client is obstore (Rust, async). Credentials come from the standard AWS variables, read by
obstore itself: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, web
identity (``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``, as Kubernetes service accounts
set them), ECS container credentials, then the EC2 instance metadata service. Shared config
files (``~/.aws/credentials`` profiles) are not read. Every obstore error becomes a modelhost
error in :meth:`S3ModelStore._errors`, and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncGenerator, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
import yaml
from obstore.exceptions import AlreadyExistsError, BaseError
from obstore.store import S3Store

from modelhost.errors import (
    InvalidManifest,
    ModelhostError,
    StorageError,
    VersionNotFound,
)
from modelhost.manifest import MANIFEST_FILE, Manifest, parse_manifest
from modelhost.storage.artifact_cache import ArtifactCache
from modelhost.storage.base import (
    FetchedVersion,
    FileInfo,
    ModelStore,
    Progress,
    PushedVersion,
    check_model_name,
)
from modelhost.storage.index import INDEX_PATH, decode_index, encode_index
from modelhost.storage.push import plan_push, version_exists
from modelhost.storage.ranged import RangedSource
from modelhost.storage.transfer import (
    CHUNK_BYTES,
    Chunk,
    HashingReader,
    Source,
    Stream,
    download_version,
)

if TYPE_CHECKING:
    from obstore import GetOptions
    from obstore.store import ClientConfig, RetryConfig

# A store that is away should fail a load in seconds, not retry for minutes (obstore's default
# is 10 retries within 3 minutes); the model cache's own backoff takes it from there.
_RETRY: RetryConfig = {
    "max_retries": 3,
    "retry_timeout": timedelta(seconds=15),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
}
# Downloads: a file bigger than one part is fetched as ranged GETs, this many at once. One S3
# connection gives roughly 50-100 MB/s; 16 of 16 MiB fill a 10 Gb/s pod link while each GET
# stays long enough (~0.2 s) that its first-byte latency is a small part of it.
DEFAULT_PART_BYTES = 16 << 20
DEFAULT_CONCURRENCY = 16
_PART_CHUNK_BYTES = 1 << 20
# Multipart upload parts: S3 allows 10,000 per object, so big files get bigger parts.
_MIN_PART = 16 << 20
_MAX_PARTS = 9_000


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, prefix.strip("/")


class S3ModelStore(ModelStore):
    """Model versions in S3, fetched into a verified local artifact cache."""

    def __init__(
        self,
        uri: str,
        cache: ArtifactCache,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        part_bytes: int = DEFAULT_PART_BYTES,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        bucket, prefix = parse_s3_uri(uri)
        self.part_bytes = max(1, part_bytes)
        self.concurrency = max(1, concurrency)
        self.uri = f"s3://{bucket}/{prefix}".rstrip("/")
        self.cache = cache
        self.artifact_cache = cache
        config: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
        if region:
            config["region"] = region
        client: ClientConfig = {
            # No overall deadline to speak of (obstore's default, 30 s, would cut any big
            # download short); a connection that stalls is caught by the read timeout instead.
            "connect_timeout": "5s",
            "timeout": "24h",
            "read_timeout": "30s",
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
        }
        with self._errors(f"configuring {self.uri}"):
            self._store = S3Store(
                bucket, prefix=prefix or None, client_options=client, retry_config=_RETRY, **config
            )
        # Names this store's versions in the cache's views, so two stores never share one.
        self._cache_key = hashlib.sha256(f"{endpoint} {self.uri}".encode()).hexdigest()[:16]
        # A pushed version's index and manifest never change (a push never overwrites one), so
        # each is read once per process, however often the registry rescans the store.
        self._indexes: dict[tuple[str, int], dict[str, FileInfo]] = {}
        self._manifests: dict[tuple[str, int], Manifest] = {}

    async def list_models(self) -> dict[str, list[int]]:
        found: dict[str, set[int]] = {}
        suffix = "/" + INDEX_PATH
        with self._errors(f"listing {self.uri}"):
            async for batch in obstore.list(self._store, chunk_size=1000):
                for meta in batch:
                    path = meta["path"]
                    name, _, rest = path.partition("/")
                    version, _, tail = rest.partition("/")
                    if "/" + tail == suffix and _is_version(version):
                        found.setdefault(name, set()).add(int(version))
        return {name: sorted(versions) for name, versions in sorted(found.items())}

    async def files(self, name: str, version: int) -> dict[str, FileInfo]:
        index = self._indexes.get((name, version))
        if index is None:
            key = self._key(name, version, INDEX_PATH)
            missing = VersionNotFound(f"{self.uri} holds no version {version} of model {name!r}")
            with self._errors(f"GET {self.uri}/{key}", missing=missing):
                data = bytes(await (await obstore.get_async(self._store, key)).bytes_async())
            index = self._indexes[name, version] = decode_index(data, source=f"{self.uri}/{key}")
        return dict(index)

    async def read_manifest(self, name: str, version: int) -> Manifest:
        manifest = self._manifests.get((name, version))
        if manifest is not None:
            return manifest
        index = await self.files(name, version)
        key = self._key(name, version, MANIFEST_FILE)
        source = f"{self.uri}/{key}"
        if MANIFEST_FILE not in index:
            raise InvalidManifest(f"{source}: the version's file index lists no {MANIFEST_FILE}")
        with self._errors(f"GET {source}", missing=InvalidManifest(f"{source}: not found")):
            data = bytes(await (await obstore.get_async(self._store, key)).bytes_async())
        manifest = await asyncio.to_thread(_verified_manifest, data, index[MANIFEST_FILE], source)
        self._manifests[name, version] = manifest
        return manifest

    async def fetch(self, name: str, version: int) -> FetchedVersion:
        index = await self.files(name, version)
        return await self.cache.fetch_version(
            f"{self._cache_key}/{name}/{version}",
            index,
            lambda path: self._source(self._key(name, version, path), index[path].size),
            source=f"{self.uri}/{name}/{version}",
        )

    async def download(
        self, name: str, version: int, dest: Path, progress: Progress | None = None
    ) -> dict[str, FileInfo]:
        index = await self.files(name, version)
        return await download_version(
            index,
            lambda path: self._source(self._key(name, version, path), index[path].size),
            lambda path: f"{self.uri}/{name}/{version}/{path}",
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
        plan = await plan_push(self, name, source, version)
        version = plan.version
        index: dict[str, FileInfo] = {}
        for path, (file, size) in plan.files.items():
            key = self._key(name, version, path)
            reader = HashingReader(file, progress)
            with self._errors(f"PUT {self.uri}/{key}"):
                # A file up to one part goes up in one PUT at close(), a bigger one in parts.
                # Pushed chunk by chunk from here, rather than handing obstore an async
                # iterator to pull from: a Rust task holding Python iterators could outlive
                # the event loop. Left unclosed after an error, nothing is committed.
                part = max(_MIN_PART, -(-size // _MAX_PARTS))
                writer = obstore.open_writer_async(
                    self._store, key, buffer_size=part, max_concurrency=4
                )
                async for chunk in reader:
                    await writer.write(chunk)
                await writer.close()
            index[path] = FileInfo(reader.size, reader.sha256)
        key = self._key(name, version, INDEX_PATH)
        with self._errors(f"PUT {self.uri}/{key}", exists=version_exists(self, name, version)):
            # "create": of two pushes racing to one version number, the second one fails.
            await obstore.put_async(self._store, key, encode_index(index, aliases), mode="create")
        return PushedVersion(name, version, index)

    async def close(self) -> None:
        await self.cache.close()

    # -- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def _key(name: str, version: int, path: str) -> str:
        return f"{check_model_name(name)}/{version}/{path}"

    def _source(self, key: str, size: int) -> Source:
        """One GET for a file up to a part, parallel ranged GETs for a bigger one."""
        if size <= self.part_bytes:
            return self._stream(key)
        return RangedSource(
            lambda start, end: self._stream(key, (start, end)), self.part_bytes, self.concurrency
        )

    def _stream(self, key: str, byte_range: tuple[int, int] | None = None) -> Stream:
        """The object's bytes (``byte_range``: only ``[start, end)``), as one GET."""
        what = f"GET {self.uri}/{key}"
        options: GetOptions = {}
        if byte_range is not None:
            what += f" bytes {byte_range[0]}-{byte_range[1] - 1}"
            options["range"] = byte_range
        # Parts stream in smaller chunks: several are in flight at once.
        chunk_bytes = CHUNK_BYTES if byte_range is None else _PART_CHUNK_BYTES

        async def chunks() -> AsyncGenerator[Chunk, None]:
            with self._errors(what):
                response = await obstore.get_async(self._store, key, options=options)
                async for chunk in response.stream(min_chunk_size=chunk_bytes):
                    yield chunk

        return chunks

    @contextlib.contextmanager
    def _errors(
        self,
        what: str,
        *,
        missing: ModelhostError | None = None,
        exists: ModelhostError | None = None,
    ) -> Iterator[None]:
        """The one place obstore's errors become modelhost errors."""
        try:
            yield
        except AlreadyExistsError:
            if exists is None:
                raise StorageError(f"S3 storage: {what}: the object already exists") from None
            raise exists from None
        except (FileNotFoundError, BaseError, ConnectionError, TimeoutError) as exc:
            if missing is not None and _is_not_found(exc):
                raise missing from None
            raise StorageError(f"S3 storage failed: {what}: {_cause(exc)}") from None


def _is_not_found(exc: Exception) -> bool:
    return isinstance(exc, FileNotFoundError) or type(exc).__name__ == "NotFoundError"


def _cause(exc: Exception) -> str:
    """obstore's message, first line only: the rest is a debug dump of the Rust error."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first if len(first) <= 400 else first[:400] + "…"


def _is_version(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) > 0


def _verified_manifest(data: bytes, info: FileInfo, source: str) -> Manifest:
    got = hashlib.sha256(data).hexdigest()
    if got != info.sha256:
        raise InvalidManifest(
            f"{source} does not match its recorded sha256: expected {info.sha256}, got {got}"
        )
    try:
        parsed = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidManifest(f"{source}: {exc}") from None
    return parse_manifest(parsed, source=source)
