"""Usage records in the database: one per inference request."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from modelhost.db.tables import usage_records
from modelhost.db.timestamps import as_utc


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and one of these
# is made for every request.
@dataclass(slots=True)
class UsageRecord:
    record_id: str
    user_id: int | None
    key_id: str | None
    model: str
    version: int | None
    status: int
    latency_ms: float
    batch_size: int
    bytes_in: int
    bytes_out: int
    created_at: datetime

    def to_row(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and this runs for every request.
        return {name: getattr(self, name) for name in _FIELDS}

    def to_json(self) -> dict[str, Any]:
        data = self.to_row()
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UsageRecord:
        return cls(**{**data, "created_at": datetime.fromisoformat(data["created_at"])})


_FIELDS = tuple(field.name for field in fields(UsageRecord))
_SQLITE_INSERT = (
    f"INSERT INTO {usage_records.name} ({', '.join(_FIELDS)}) "
    f"VALUES ({', '.join('?' for _ in _FIELDS)}) ON CONFLICT (record_id) DO NOTHING"
)


# Every field but the timestamp, in the order _SQLITE_INSERT names them (one C call).
_PLAIN_FIELDS = attrgetter(*_FIELDS[:-1])
assert _FIELDS[-1] == "created_at"


_SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def _sqlite_row(record: UsageRecord) -> tuple[Any, ...]:
    """A record's parameters as SQLAlchemy's SQLite dialect writes them: timestamps as naive
    UTC text with six digits of microseconds (``2026-12-01 07:12:16.206258``)."""
    at = record.created_at
    if at.tzinfo is not UTC:
        at = as_utc(at)
    # %-formatting from the fields: isoformat() and the conversion cost twice as much, and this
    # runs for every record.
    created = _SQLITE_TIME % (
        at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond
    )  # fmt: skip
    plain: tuple[Any, ...] = _PLAIN_FIELDS(record)
    return plain + (created,)


@dataclass(frozen=True)
class VersionDemand:
    """How many requests a model version answered in a window of time."""

    model: str
    version: int
    requests: int


@dataclass(frozen=True)
class ModelSummary:
    model: str
    requests: int
    errors: int
    mean_latency_ms: float
    bytes_in: int
    bytes_out: int


class UsageStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # SQLite keeps timestamps as naive text: compare with naive UTC there.
        self._naive = engine.dialect.name == "sqlite"

    async def insert(self, records: list[UsageRecord]) -> None:
        """Insert records; ones already there (same record_id) are skipped, so replays are safe."""
        if not records:
            return
        dialect = self._engine.dialect.name
        if dialect == "sqlite":
            # SQLAlchemy's parameter processing, row by row, took a third of a record's cost
            # on this path (18 us against 12 through the driver): the rows go to it as tuples.
            async with self._engine.begin() as db:
                await db.exec_driver_sql(_SQLITE_INSERT, [_sqlite_row(r) for r in records])
            return
        builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = builder(usage_records).on_conflict_do_nothing(index_elements=["record_id"])
        async with self._engine.begin() as db:
            await db.execute(statement, [record.to_row() for record in records])

    async def records(
        self,
        *,
        user_id: int | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[tuple[int, UsageRecord]]:
        """Newest first; page with ``before_id`` = the last id of the previous page."""
        query = self._filtered(
            select(usage_records), user_id, model, self._param(since), self._param(until)
        )
        if before_id is not None:
            query = query.where(usage_records.c.id < before_id)
        query = query.order_by(usage_records.c.id.desc()).limit(limit)
        async with self._engine.connect() as db:
            rows = await db.execute(query)
            return [(row.id, _record(row)) for row in rows]

    async def count(self, *, user_id: int | None = None, model: str | None = None) -> int:
        query = self._filtered(select(func.count()).select_from(usage_records), user_id, model)
        async with self._engine.connect() as db:
            return int((await db.execute(query)).scalar_one())

    async def summary(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[ModelSummary]:
        c = usage_records.c
        query = self._filtered(
            select(
                c.model,
                func.count().label("requests"),
                func.sum(case((c.status >= 400, 1), else_=0)).label("errors"),
                func.avg(c.latency_ms).label("latency"),
                func.sum(c.bytes_in).label("bytes_in"),
                func.sum(c.bytes_out).label("bytes_out"),
            ).group_by(c.model),
            None,
            None,
            self._param(since),
            self._param(until),
        ).order_by(c.model)
        async with self._engine.connect() as db:
            rows = await db.execute(query)
            return [
                ModelSummary(
                    row.model,
                    int(row.requests),
                    int(row.errors or 0),
                    float(row.latency or 0.0),
                    int(row.bytes_in or 0),
                    int(row.bytes_out or 0),
                )
                for row in rows
            ]

    async def busiest_versions(
        self, *, since: datetime, models: frozenset[str], limit: int = 50
    ) -> list[VersionDemand]:
        """The versions of ``models`` that answered the most requests (status below 400) since
        ``since``, busiest first.

        Naming the models lets the database walk the (model, created_at) index for each
        instead of scanning a table that holds one row per request ever served.
        """
        c = usage_records.c
        requests = func.count().label("requests")
        query = (
            select(c.model, c.version, requests)
            .where(
                c.model.in_(sorted(models)),
                c.created_at >= self._param(since),
                c.status < 400,
                c.version.is_not(None),
            )
            .group_by(c.model, c.version)
            .order_by(requests.desc(), c.model, c.version)
            .limit(limit)
        )
        async with self._engine.connect() as db:
            rows = await db.execute(query)
            return [VersionDemand(row.model, int(row.version), int(row.requests)) for row in rows]

    def _param(self, moment: datetime | None) -> datetime | None:
        if moment is None or not self._naive:
            return moment
        return as_utc(moment).replace(tzinfo=None)

    @staticmethod
    def _filtered(
        query: Select[Any],
        user_id: int | None,
        model: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Select[Any]:
        c = usage_records.c
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        if model is not None:
            query = query.where(c.model == model)
        if since is not None:
            query = query.where(c.created_at >= since)
        if until is not None:
            query = query.where(c.created_at < until)
        return query


def _record(row: Any) -> UsageRecord:
    return UsageRecord(
        record_id=row.record_id,
        user_id=row.user_id,
        key_id=row.key_id,
        model=row.model,
        version=row.version,
        status=row.status,
        latency_ms=row.latency_ms,
        batch_size=row.batch_size,
        bytes_in=row.bytes_in,
        bytes_out=row.bytes_out,
        created_at=as_utc(row.created_at),
    )
