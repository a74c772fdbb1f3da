"""Fresh databases for tests: a SQLite file, or a new database on the local PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import asyncpg

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_url(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def create_postgres_database() -> str:
    name = f"modelhost_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(PG_ADMIN)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return name


def drop_postgres_database(name: str) -> None:
    async def drop() -> None:
        connection = await asyncpg.connect(PG_ADMIN)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'modelhost.db'}"


def postgres_cluster(action: str) -> None:
    """Stop or start the machine's PostgreSQL (the outage test)."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True
    )
