"""Database access for CLI commands: settings from the environment, schema brought up to date."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from modelhost.db.engine import create_engine
from modelhost.db.migrate import upgrade
from modelhost.errors import ModelhostError
from modelhost.settings import Settings

T = TypeVar("T")

DATABASE_HELP = "sqlite:///FILE or postgresql://... [MODELHOST_DATABASE_URL]"


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    try:
        if settings.db_auto_migrate:
            await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


def run(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work`` against the database; modelhost errors become a message and exit code 1."""

    async def main() -> T:
        async with database(settings) as engine:
            return await work(engine)

    try:
        return asyncio.run(main())
    except ModelhostError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
