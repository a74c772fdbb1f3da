"""Replicas starting together on one empty database: every migration attempt succeeds, one schema.

Four processes start at the same moment against a database nobody has migrated yet: two
``modelhost serve`` (which migrate at start) and two ``modelhost db upgrade`` (the Kubernetes
migration Job, run twice by a retry). Before the migration lock, on SQLite two of them died with
``table users already exists``; on PostgreSQL with a duplicate key in ``pg_type``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import inspect, text

from modelhost.db.engine import create_engine
from modelhost.settings import Settings
from tests.support.server import ServerProcess

TABLES = {"users", "api_keys", "models", "model_versions", "model_aliases", "usage_records"}


def schema_of(url: str) -> tuple[set[str], list[str]]:
    """The tables and the alembic_version rows of the database at ``url``."""

    async def read() -> tuple[set[str], list[str]]:
        engine = create_engine(Settings(database_url=url))
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(
                    lambda sync: set(inspect(sync).get_table_names())
                )
                rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
                return tables, [row[0] for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_four_processes_migrate_one_empty_database_at_once(
    database_url: str, tmp_path: Path
) -> None:
    env = {"MODELHOST_DATABASE_URL": database_url, "MODELHOST_LOG_FORMAT": "text"}
    # An empty repository: this is about the schema, not about registering models together.
    repository = tmp_path / "models"
    repository.mkdir()
    servers = [ServerProcess(repository, tmp_path / f"serve-{i}.log", env=env) for i in range(2)]
    upgrades = [
        subprocess.Popen(
            [sys.executable, "-m", "modelhost.cli.main", "db", "upgrade"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for upgrade in upgrades:
            output, _ = upgrade.communicate(timeout=120)
            assert upgrade.returncode == 0, output
            assert "database schema is up to date" in output
        for server in servers:
            server.wait_ready(timeout=120)
            assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    finally:
        for server in servers:
            server.stop()
        for upgrade in upgrades:
            if upgrade.poll() is None:
                upgrade.kill()
                upgrade.wait()

    tables, versions = schema_of(database_url)
    assert TABLES <= tables, tables
    assert len(versions) == 1, versions  # one head, stamped once
