"""Writes usage records in batches, off the request path, losing none when the database is away.

Requests hand records to :meth:`UsageWriter.record` (a list append). A background task inserts
them in batches. When an insert fails the batch is appended to a local journal file (fsynced);
the journal is replayed, oldest first, once inserts work again, and truncated only after its
records are committed. Every record carries a unique id and inserts skip ids already present,
so a replay that is interrupted and repeated writes nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from modelhost.db.usage import UsageRecord, UsageStore

log = logging.getLogger(__name__)

# Above this many records waiting in memory, they go to the journal without trying the database.
_MAX_BUFFER = 50_000
_REPLAY_CHUNK = 1000


class UsageWriter:
    def __init__(
        self,
        store: UsageStore,
        journal: Path,
        *,
        flush_seconds: float,
        batch_size: int,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self._store = store
        self._journal = journal
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._buffer: list[UsageRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.written = 0
        self.journaled = 0
        self.replayed = 0
        self.database_ok = True

    def record(self, record: UsageRecord) -> None:
        """Queue one record; never blocks, never raises."""
        if not self.enabled:
            return
        self._buffer.append(record)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the loop (letting a flush under way finish: cancelling it mid-insert could
        drop its batch) and write, or journal, everything still in memory."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the loop must outlive any one failure
                log.exception("usage writer flush failed")

    async def flush(self) -> None:
        if self._journal_has_records() and not await self._replay():
            await self._spill(self._take_all())
            return
        while self._buffer:
            if len(self._buffer) > _MAX_BUFFER:
                await self._spill(self._take_all())
                return
            batch = self._buffer[: self._batch_size]
            # Records leave the buffer only once they are committed or journaled.
            if not await self._insert(batch):
                await self._spill(self._take_all())
                return
            del self._buffer[: len(batch)]

    def _take_all(self) -> list[UsageRecord]:
        taken, self._buffer = self._buffer, []
        return taken

    async def _insert(self, batch: list[UsageRecord]) -> bool:
        try:
            await self._store.insert(batch)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if self.database_ok:
                log.warning("usage records go to the journal: the database failed: %s", exc)
            self.database_ok = False
            return False
        if not self.database_ok:
            log.info("the database is back: usage records are written again")
        self.database_ok = True
        self.written += len(batch)
        return True

    async def _spill(self, batch: list[UsageRecord]) -> None:
        if batch:
            await asyncio.to_thread(_append_lines, self._journal, batch)
            self.journaled += len(batch)

    def _journal_has_records(self) -> bool:
        try:
            return self._journal.stat().st_size > 0
        except FileNotFoundError:
            return False

    async def _replay(self) -> bool:
        """Insert the journal's records; True once it is empty."""
        records = await asyncio.to_thread(_read_lines, self._journal)
        for start in range(0, len(records), _REPLAY_CHUNK):
            if not await self._insert(records[start : start + _REPLAY_CHUNK]):
                return False
        await asyncio.to_thread(_truncate, self._journal)
        self.replayed += len(records)
        log.info("replayed %d usage records from %s", len(records), self._journal)
        return True


def _append_lines(path: Path, records: list[UsageRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as journal:
        journal.writelines(json.dumps(record.to_json()) + "\n" for record in records)
        journal.flush()
        os.fsync(journal.fileno())


def _read_lines(path: Path) -> list[UsageRecord]:
    records = []
    with open(path, encoding="utf-8") as journal:
        for line in journal:
            if line.strip():
                try:
                    records.append(UsageRecord.from_json(json.loads(line)))
                except (ValueError, TypeError, KeyError):
                    # A line cut short by a crash mid-write: the rest of the journal still counts.
                    log.error("skipping an unreadable usage journal line: %r", line[:200])
    return records


def _truncate(path: Path) -> None:
    with open(path, "w", encoding="utf-8") as journal:
        journal.flush()
        os.fsync(journal.fileno())
