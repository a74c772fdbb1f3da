"""Moving a file's bytes while hashing them, in one pass, with the disk work in worker threads.

- :class:`HashingReader` reads a local file chunk by chunk, hashing as it reads (push).
- :func:`file_stream` streams a local file's chunks (pull and push between folders).
- :func:`receive_verified` writes a stream of chunks to a temporary file, hashing as it writes,
  and renames the file into place only if its sha256 is the one expected; a mismatch is fetched
  once more, and a second one is an ArtifactMismatch naming the file and both hashes (pull and
  the artifact cache).

Hashing and file I/O release the GIL, so a chunk is hashed in one worker thread and written in
another while the next one arrives from the network: the event loop only hands chunks over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelhost.errors import ArtifactMismatch, BadRequest, StorageError
from modelhost.storage.base import FileInfo, Progress
from modelhost.storage.ranged import RangedSource, receive_ranged

# Big enough that the per-chunk hand-over costs nothing next to the bytes, small enough that
# the two chunks in flight (one arriving, one being written) stay a few MiB.
CHUNK_BYTES = 8 << 20

Chunk = bytes | memoryview
Stream = Callable[[], AsyncGenerator[Chunk, None]]  # opens a fresh stream of the object's bytes
# Where a file's bytes come from: one stream, or parts read in parallel (storage.ranged).
Source = Stream | RangedSource


class HashingReader:
    """Async-iterates a file's chunks, read (and hashed) one ahead in a worker thread."""

    def __init__(self, path: Path, progress: Progress | None = None) -> None:
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()
        self._progress = progress

    @property
    def sha256(self) -> str:
        """The digest of what was read so far (the whole file once iteration ended)."""
        return self._hash.hexdigest()

    def _read(self, file: BinaryIO) -> bytes:
        chunk = file.read(CHUNK_BYTES)
        self._hash.update(chunk)
        return chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        file = await asyncio.to_thread(open, self.path, "rb")
        ahead: asyncio.Future[bytes] | None = None
        try:
            ahead = asyncio.ensure_future(asyncio.to_thread(self._read, file))
            while chunk := await ahead:
                ahead = asyncio.ensure_future(asyncio.to_thread(self._read, file))
                self.size += len(chunk)
                if self._progress is not None:
                    self._progress(len(chunk))
                yield chunk
        finally:
            if ahead is not None and not ahead.done():
                await asyncio.wait([ahead])  # never close the file under a running read
            await asyncio.to_thread(file.close)


class _HashingFile:
    """A file being written from a stream. Each chunk is hashed in one worker thread and
    written in another at the same time (both release the GIL), while the next chunk arrives;
    one chunk in flight keeps the hash and the writes in order."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self.hash = hashlib.sha256()
        self._pending: list[asyncio.Future[None]] = []
        # A cancelled await does not stop its thread: the lock keeps close() from pulling the
        # descriptor (whose number the OS may hand out again) from under a write in progress.
        self._lock = threading.Lock()
        self._closed = False

    def _write(self, chunk: Chunk) -> None:
        with self._lock:
            view = memoryview(chunk)
            while view and not self._closed:
                view = view[os.write(self.fd, view) :]

    async def write(self, chunk: Chunk) -> None:
        await self.drain()
        self.size += len(chunk)
        self._pending = [
            asyncio.ensure_future(asyncio.to_thread(self.hash.update, chunk)),
            asyncio.ensure_future(asyncio.to_thread(self._write, chunk)),
        ]

    async def drain(self) -> None:
        pending, self._pending = self._pending, []
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    def close(self, truncate: bool = False) -> None:
        """Close the file (cutting off unwritten preallocated room first). Blocking."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if truncate:
                    os.ftruncate(self.fd, self.size)
            finally:
                os.close(self.fd)


@dataclass(frozen=True, slots=True)
class Received:
    """A file that arrived whole and verified."""

    size: int
    sha256: str
    seconds: float  # moving and hashing the bytes, every attempt together
    attempts: int


async def receive_verified(
    stream: Source,
    dest: Path,
    temp: Path,
    *,
    expected_size: int,
    expected_sha256: str | None,
    what: str,
    progress: Progress | None = None,
    on_mismatch: Callable[[str, str], None] | None = None,
) -> Received:
    """Write ``stream`` to ``temp`` and rename it to ``dest`` once its sha256 is checked.

    A :class:`RangedSource` is fetched in parallel parts (whole again on a mismatch: the parts
    cannot tell which of them was wrong).
    ``what`` names the file in errors. With ``expected_sha256`` None the bytes are taken as
    they are (their digest is returned). ``on_mismatch(expected, got)`` is told of each bad copy.
    """
    started = time.perf_counter()
    got = ""
    for attempt in (1, 2):
        size, got = await _receive(stream, temp, expected_size, progress)
        if expected_sha256 is None or (got == expected_sha256 and size == expected_size):
            await _rename(temp, dest)
            return Received(size, got, time.perf_counter() - started, attempt)
        await asyncio.to_thread(temp.unlink, missing_ok=True)
        if on_mismatch is not None:
            on_mismatch(expected_sha256, got)
    raise ArtifactMismatch(
        f"{what} does not match its recorded sha256 after 2 downloads: expected "
        f"{expected_sha256}, got {got}; the stored copy is corrupt (push the version again)"
    )


async def _receive(
    stream: Source, temp: Path, expected_size: int, progress: Progress | None
) -> tuple[int, str]:
    if isinstance(stream, RangedSource):
        return await _receive_ranged(stream, temp, expected_size, progress)
    out = _HashingFile(await asyncio.to_thread(_create, temp, expected_size))
    try:
        async with contextlib.aclosing(stream()) as chunks:
            async for chunk in chunks:
                await out.write(chunk)
                if progress is not None:
                    progress(len(chunk))
        await out.drain()
        # Unwritten preallocated room must not look like data.
        await asyncio.to_thread(out.close, out.size != expected_size)
    except BaseException as exc:
        await asyncio.to_thread(_discard, out, temp)
        if isinstance(exc, OSError):  # the local disk: the stream translates its own errors
            raise StorageError(f"cannot write {temp}: {exc.strerror or exc}") from None
        raise
    return out.size, out.hash.hexdigest()


async def _receive_ranged(
    source: RangedSource, temp: Path, size: int, progress: Progress | None
) -> tuple[int, str]:
    fd = await asyncio.to_thread(_create, temp, size)
    try:
        sha256 = await receive_ranged(source, fd, size, progress)
    except BaseException as exc:
        await asyncio.to_thread(_close_and_remove, fd, temp)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {temp}: {exc.strerror or exc}") from None
        raise
    await asyncio.to_thread(os.close, fd)
    return size, sha256


def _close_and_remove(fd: int, temp: Path) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    temp.unlink(missing_ok=True)


def _create(temp: Path, size: int) -> int:
    try:
        temp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)  # read: ranged hashing
    except OSError as exc:
        raise StorageError(f"cannot write {temp}: {exc.strerror}") from None
    if size > 0 and hasattr(os, "posix_fallocate"):
        # Reserving the blocks up front makes the writes cheaper and a full disk fail at once.
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise StorageError(f"no room for {size} bytes at {temp}: {exc.strerror}") from None
    return fd


def _discard(out: _HashingFile, temp: Path) -> None:
    with contextlib.suppress(OSError):
        out.close()  # waits for a write still running in its thread
    temp.unlink(missing_ok=True)


async def _rename(temp: Path, dest: Path) -> None:
    def rename() -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, dest)

    await asyncio.to_thread(rename)


def file_stream(path: Path) -> Stream:
    """A local file's bytes as a stream, read in a worker thread."""

    async def chunks() -> AsyncGenerator[Chunk, None]:
        try:
            file = await asyncio.to_thread(open, path, "rb")
            try:
                while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
                    yield chunk
            finally:
                await asyncio.to_thread(file.close)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None

    return chunks


async def download_version(
    index: dict[str, FileInfo],
    open_stream: Callable[[str], Source],
    where: Callable[[str], str],
    dest: Path,
    progress: Progress | None,
) -> dict[str, FileInfo]:
    """Copy every file of ``index`` into the new folder ``dest``, each checked against its
    size and sha256 as it arrives (``models pull``, from any store)."""
    partials = await asyncio.to_thread(_prepare_destination, dest)
    got: dict[str, FileInfo] = {}
    try:
        for number, (path, info) in enumerate(sorted(index.items())):
            received = await receive_verified(
                open_stream(path),
                dest / path,
                partials / str(number),
                expected_size=info.size,
                expected_sha256=info.sha256,
                what=where(path),
                progress=progress,
            )
            got[path] = FileInfo(received.size, received.sha256)
    finally:
        await asyncio.to_thread(shutil.rmtree, partials, True)
    return got


def _prepare_destination(dest: Path) -> Path:
    """Create the folder ``dest`` (absent or empty) and a scratch folder in it for partial
    files; return the scratch folder."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BadRequest(f"{dest} is not an empty folder: pull into a new one")
    partials = dest / ".modelhost-partial"
    partials.mkdir(parents=True)
    return partials
