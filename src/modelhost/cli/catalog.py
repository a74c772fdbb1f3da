"""``modelhost models ls|alias``: the model registry, straight in the database.

Servers pick changes up within MODELHOST_REGISTRY_REFRESH_SECONDS; an alias moved here flips on
each server only once its new version has loaded there (see catalog/sync.py).
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from modelhost.cli.database import DATABASE_HELP, run
from modelhost.cli.settings import build_settings
from modelhost.db.catalog import CatalogStore

app = typer.Typer(help="Models, versions and aliases.", no_args_is_help=True)

DatabaseOption = Annotated[str | None, typer.Option(help=DATABASE_HELP)]


@app.command("ls")
def list_models(database_url: DatabaseOption = None) -> None:
    """List models with their versions and aliases."""

    async def work(engine: AsyncEngine) -> None:
        snapshot = await CatalogStore(engine).snapshot()
        for name, versions in snapshot.versions.items():
            aliases = snapshot.aliases.get(name, {})
            for version, row in versions.items():
                pointing = ",".join(sorted(a for a, v in aliases.items() if v == version))
                typer.echo(f"{name}\t{version}\t{row.runtime}\t{row.size_bytes}\t{pointing}")

    run(build_settings(database_url=database_url), work)


@app.command("alias")
def alias(name: str, alias_name: str, version: int, database_url: DatabaseOption = None) -> None:
    """Point ALIAS_NAME of model NAME at VERSION."""
    if alias_name.isdigit():
        raise typer.BadParameter("an alias cannot be a number: it would shadow a version")

    async def work(engine: AsyncEngine) -> None:
        await CatalogStore(engine).set_alias(name, alias_name, version)

    run(build_settings(database_url=database_url), work)
    typer.echo(f"{name}:{alias_name} -> {version}")
