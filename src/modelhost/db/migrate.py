"""Bring a database's schema up to date (``modelhost db upgrade``, and ``serve`` at start).

Any number of replicas (and the Kubernetes migration Job) may run this at the same moment on one
database, so each attempt first takes a lock that lasts until its transaction ends, then lets
Alembic read the schema's version *under* that lock: whoever comes second finds the schema
already at head and does nothing.

- PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock``). A session lock
  released before the commit would let the next process look at the schema before the first
  one's tables are visible, and fail creating them again.
- SQLite: ``BEGIN EXCLUSIVE`` on a connection the driver leaves alone (Python's sqlite3 would
  otherwise run DDL outside any transaction, which is how two replicas both "created" the
  tables), waiting for the writer ahead for up to ``LOCK_WAIT_SECONDS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"

# "modelho" in ASCII: one lock id shared by every modelhost process on a PostgreSQL database.
MIGRATION_LOCK_ID = 0x6D6F64656C686F
# How long a process waits for another one's migration on SQLite (it is seconds at most).
LOCK_WAIT_SECONDS = 120


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate to ``revision``, safely whatever else migrates the same database at once."""
    if engine.dialect.name == "sqlite":
        await _upgrade_sqlite(engine, revision)
        return
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
            )
        await connection.run_sync(_run_alembic, revision)


async def _upgrade_sqlite(engine: AsyncEngine, revision: str) -> None:
    async with engine.connect() as plain:
        # AUTOCOMMIT hands transaction control to the statements below instead of the driver.
        connection: AsyncConnection = await plain.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")
        await connection.exec_driver_sql("BEGIN EXCLUSIVE")
        try:
            await connection.run_sync(_run_alembic, revision)
        except BaseException:
            await connection.exec_driver_sql("ROLLBACK")
            raise
        await connection.exec_driver_sql("COMMIT")


def _run_alembic(connection: Any, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
