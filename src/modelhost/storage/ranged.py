"""Fetching one big file as many ranged reads at once, each part written at its offset.

A :class:`RangedSource` is a remote file that can be read in byte ranges (an S3 object). Its
parts, ``part_bytes`` each, are fetched by ``concurrency`` workers at once, each streaming its
part straight into the destination file at the part's offset (``pwrite`` in a worker thread),
so memory holds only the chunks in flight. A part that fails is fetched again alone, from the
first byte it lacks, up to ``attempts`` times; the others go on.

The file's sha256 is computed in order while parts arrive: a hasher follows the growing prefix
of finished parts, reading it back from the page cache it was just written to, so hashing
overlaps the download and costs no extra pass at the end. (Measured on the 2-core development
machine, busy with other work: 512 MiB from moto through the test proxy at 100 MB/s per
connection, 16 parts of 16 MiB at once, medians of 3: 2.9 s hashing in order, 5.4 s hashing
the whole file after the last part.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelhost.errors import StorageError
from modelhost.storage.base import Progress

if TYPE_CHECKING:
    from modelhost.storage.transfer import Chunk, Stream

log = logging.getLogger(__name__)

_READ_BACK = 8 << 20  # the hasher's reads from the page cache


@dataclass(frozen=True, slots=True)
class RangedSource:
    """A remote file readable in byte ranges: ``open_range(start, end)`` opens a fresh stream
    of bytes ``[start, end)``; fetched ``part_bytes`` at a time by ``concurrency`` workers."""

    open_range: Callable[[int, int], Stream]
    part_bytes: int
    concurrency: int
    attempts: int = 3
    retry_delay: float = 0.2  # seconds before a part's second attempt, doubling after


async def receive_ranged(
    source: RangedSource,
    fd: int,
    size: int,
    progress: Progress | None = None,
    *,
    hash_in_order: bool = True,
) -> str:
    """Fill the open file ``fd`` (``size`` bytes, preallocated) from ``source``; return the
    sha256 of what was written. Raises StorageError once a part failed ``attempts`` times.
    (``hash_in_order=False`` hashes the whole file after the last part instead: kept for
    measuring the difference, see the module's docstring.)"""
    parts = [
        (start, min(start + source.part_bytes, size)) for start in range(0, size, source.part_bytes)
    ]
    done = [False] * len(parts)
    hasher = _PrefixHasher(fd, size)
    pending = iter(range(len(parts)))

    async def worker() -> None:
        for index in pending:  # shared: each part goes to one worker
            await _fetch_part(source, fd, *parts[index], progress)
            done[index] = True
            if hash_in_order:
                hasher.advance(_finished_prefix(parts, done))

    workers = [asyncio.ensure_future(worker()) for _ in range(min(source.concurrency, len(parts)))]
    hashing = asyncio.ensure_future(hasher.run())
    try:
        await asyncio.gather(*workers)
        hasher.advance(size)
        return await hashing
    finally:
        for task in (*workers, hashing):
            task.cancel()
        # Never return (and let the caller close fd) while a worker thread may still write.
        await asyncio.gather(*workers, hashing, return_exceptions=True)


def _finished_prefix(parts: list[tuple[int, int]], done: list[bool]) -> int:
    end = 0
    for (_, part_end), finished in zip(parts, done, strict=True):
        if not finished:
            break
        end = part_end
    return end


async def _fetch_part(
    source: RangedSource, fd: int, start: int, end: int, progress: Progress | None
) -> None:
    offset, delay = start, source.retry_delay
    for attempt in range(1, source.attempts + 1):
        try:
            async with contextlib.aclosing(source.open_range(offset, end)()) as chunks:
                async for chunk in chunks:
                    if len(chunk) > end - offset:
                        raise StorageError(f"the store sent more than bytes {start}-{end - 1}")
                    await _in_thread(_write_at, fd, chunk, offset)
                    offset += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
            if offset == end:
                return
            raise StorageError(f"bytes {offset}-{end - 1} missing: the stream ended early")
        except StorageError as exc:
            if attempt == source.attempts:
                raise
            log.warning(
                "part %d-%d failed (attempt %d of %d), fetching its bytes %d-%d again: %s",
                start, end - 1, attempt, source.attempts, offset, end - 1, exc,
            )  # fmt: skip
            await asyncio.sleep(delay)
            delay *= 2


async def _in_thread(function: Callable[..., None], *args: object) -> None:
    """Run ``function`` in a worker thread; if the caller is cancelled meanwhile, wait for the
    thread all the same before letting the cancellation through: it uses the file descriptor,
    which the caller closes next (and the system may hand its number to another file)."""
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise


def _write_at(fd: int, chunk: Chunk, offset: int) -> None:
    view = memoryview(chunk)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class _PrefixHasher:
    """Hashes a file's bytes in order as the finished prefix grows (reads in a worker thread)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size
        self._ready = 0  # bytes known written, from the start
        self._hashed = 0
        self._hash = hashlib.sha256()
        self._moved = asyncio.Event()

    def advance(self, ready: int) -> None:
        if ready > self._ready:
            self._ready = ready
            self._moved.set()

    async def run(self) -> str:
        while self._hashed < self._size:
            if self._hashed >= self._ready:
                self._moved.clear()
                await self._moved.wait()
                continue
            upto = self._ready
            await _in_thread(self._hash_range, self._hashed, upto)
            self._hashed = upto
        return self._hash.hexdigest()

    def _hash_range(self, start: int, end: int) -> None:
        while start < end:
            block = os.pread(self._fd, min(_READ_BACK, end - start), start)
            if not block:
                raise StorageError("the file being downloaded is shorter than written")
            self._hash.update(block)
            start += len(block)
