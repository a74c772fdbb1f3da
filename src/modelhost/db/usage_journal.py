"""The usage journal: every usage record on local disk before its request is answered.

Records are appended to the active segment (the journal path itself) with one ``write`` each:
once it returns the kernel holds the bytes, so a process killed the next instant (SIGKILL, the
OOM killer) loses none. The writer seals the active segment (renames it ``<path>.<ns>``) when it
takes the records in memory for an insert, and deletes the sealed segment once they are
committed. Sealed segments found at start, or kept because an insert failed, are replayed.
Power loss is another matter: segments are fsynced only when they must outlive a failed insert.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import orjson

from modelhost.db.usage import UsageRecord

log = logging.getLogger(__name__)


class UsageJournal:
    """Append-only segments of JSON lines; the methods that touch the disk in bulk (read,
    fsync, remove) are meant for worker threads, :meth:`append` and :meth:`seal` are cheap."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.failed = False  # the last append could not be written (disk full, say)

    def open(self) -> None:
        """Open the active segment; one left by an earlier process is sealed first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            self.seal()
        else:
            self._open_active()

    def append(self, record: UsageRecord) -> None:
        """Write one record; never raises (a failure is logged once and remembered)."""
        if self._fd is None:
            return
        # orjson writes the dataclass's fields in order and the timestamp as ISO 8601 (the same
        # line as its to_row() would give, without building that dict).
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        try:
            os.write(self._fd, line)
        except OSError as exc:
            if not self.failed:
                log.error(
                    "usage journal %s cannot be written, records wait in memory: %s", self.path, exc
                )
            self.failed = True
            return
        self.failed = False

    def seal(self) -> Path | None:
        """Close the active segment under a new name and start an empty one; None when there
        was no active segment (someone removed the file)."""
        self._close_active()
        sealed = self.path.with_name(f"{self.path.name}.{time.time_ns()}")
        try:
            os.replace(self.path, sealed)
        except FileNotFoundError:
            return None
        finally:
            self._open_active()
        return sealed

    def sealed(self) -> list[Path]:
        """Sealed segments, oldest first."""
        prefix = f"{self.path.name}."
        found = [
            p
            for p in self.path.parent.glob(f"{self.path.name}.*")
            if p.name[len(prefix) :].isdigit()
        ]
        return sorted(found, key=lambda p: int(p.name[len(prefix) :]))

    def close(self) -> None:
        """Close the active segment, removing it when it holds nothing."""
        self._close_active()
        try:
            if self.path.stat().st_size == 0:
                self.path.unlink()
        except FileNotFoundError:
            pass

    def sync_active(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def _open_active(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_segment(path: Path) -> list[UsageRecord]:
    records = []
    with open(path, "rb") as segment:
        for line in segment:
            if line.strip():
                try:
                    records.append(UsageRecord.from_json(orjson.loads(line)))
                except (ValueError, TypeError, KeyError):
                    # A line cut short by a crash mid-write: the rest still counts.
                    log.error("skipping an unreadable usage journal line: %r", line[:200])
    return records


def sync_file(path: Path) -> None:
    with open(path, "rb") as segment:
        os.fsync(segment.fileno())
