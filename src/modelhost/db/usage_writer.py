"""Writes usage records in batches, off the request path, losing none when the database is
away or the process is killed.

Requests hand records to :meth:`UsageWriter.record`: a list append, and one ``write`` of the
record to the usage journal (``db/usage_journal.py``) before the answer goes out. A background
task inserts the records in memory in batches, sealing the journal segment that holds them
first and deleting it once they are committed. When an insert fails the sealed segment is kept
(fsynced) and records stop being held in memory: they wait in the journal, which is replayed,
oldest segment first, once inserts work again. A replica killed outright replays what it left
when it starts again. Every record carries a unique id and inserts skip ids already present,
so a replay that is interrupted and repeated writes nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from modelhost.db.usage import UsageRecord, UsageStore
from modelhost.db.usage_journal import UsageJournal, read_segment, sync_file

log = logging.getLogger(__name__)

_REPLAY_CHUNK = 1000


class UsageWriter:
    """Usage records from requests to the database, through the journal."""

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
        self._journal = UsageJournal(journal)
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._buffer: list[UsageRecord] = []
        # True while the buffer holds exactly the active segment's records; False once records
        # were dropped from memory (the database was away): the segment is then read back.
        self._mirrored = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.written = 0
        self.journaled = 0
        self.replayed = 0
        self.database_ok = True

    def record(self, record: UsageRecord) -> None:
        """Journal one record and queue it; never blocks on the database, never raises."""
        if not self.enabled:
            return
        self._journal.append(record)
        self._buffer.append(record)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        if self.enabled:
            self._journal.open()
            if self._journal.sealed():
                self._wake.set()  # what an earlier process left: replay it now
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the loop (letting a flush under way finish: cancelling it mid-insert could
        drop its batch) and write, or leave journaled, everything still pending."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            await self.flush()
            self._journal.close()

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
        if self._journal.sealed() and not await self._replay():
            await self._keep_on_disk()
            return
        if not self._mirrored:
            # Records were dropped from memory while the database was away: read them back.
            self._buffer.clear()
            self._mirrored = True
            self._journal.seal()
            await self._replay()
            return
        if not self._buffer or self._journal.failed:
            # A journal that cannot be written leaves the records in memory only: insert them
            # from there (or keep them) without sealing what does not hold them.
            if self._buffer and await self._insert_all(self._buffer):
                self._buffer.clear()
            return
        segment = self._journal.seal()
        batch, self._buffer = self._buffer, []
        if await self._insert_all(batch):
            if segment is not None:
                await asyncio.to_thread(segment.unlink)
            return
        if segment is None:  # the journal file was removed under us: memory is all there is
            self._buffer[:0] = batch
            return
        await asyncio.to_thread(sync_file, segment)  # to be replayed, so it must last
        self.journaled += len(batch)

    async def _keep_on_disk(self) -> None:
        """The database is away: the records in memory wait in the active segment instead."""
        if self._buffer:
            self.journaled += len(self._buffer)
            self._buffer.clear()
            self._mirrored = False
        await asyncio.to_thread(self._journal.sync_active)

    async def _insert_all(self, records: list[UsageRecord]) -> bool:
        for start in range(0, len(records), self._batch_size):
            if not await self._insert(records[start : start + self._batch_size]):
                return False
        return True

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

    async def _replay(self) -> bool:
        """Insert every sealed segment's records, oldest first; True once none is left."""
        for segment in self._journal.sealed():
            records = await asyncio.to_thread(read_segment, segment)
            for start in range(0, len(records), _REPLAY_CHUNK):
                if not await self._insert(records[start : start + _REPLAY_CHUNK]):
                    return False
            await asyncio.to_thread(segment.unlink)
            self.replayed += len(records)
            log.info("replayed %d usage records from %s", len(records), segment)
        return True
