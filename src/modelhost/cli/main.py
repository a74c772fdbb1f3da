"""The ``modelhost`` command."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from modelhost.cli import catalog, models, users
from modelhost.cli.database import DATABASE_HELP, database
from modelhost.cli.settings import build_settings

app = typer.Typer(
    help="modelhost: serve big models to many users (Open Inference Protocol).",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="The database: users, keys, registry, usage.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(catalog.app, name="models")
catalog.app.add_typer(models.app)  # push and pull: the store side of the same group


@app.command()
def serve(
    model_repository: Annotated[
        str | None,
        typer.Option(
            help="Folder or s3://bucket/prefix of <name>/<version>/ [MODELHOST_MODEL_REPOSITORY]"
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address [MODELHOST_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [MODELHOST_PORT]")] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(help="Also serve V2 over gRPC on this port [MODELHOST_GRPC_PORT]"),
    ] = None,
    memory_budget: Annotated[
        str | None,
        typer.Option(help="Memory resident models may use, e.g. 8GiB [MODELHOST_MEMORY_BUDGET]"),
    ] = None,
    idle_unload_seconds: Annotated[
        float | None,
        typer.Option(help="Unload models idle this long [MODELHOST_IDLE_UNLOAD_SECONDS]"),
    ] = None,
    eviction_policy: Annotated[
        str | None,
        typer.Option(help="lru or cost-aware (see the README) [MODELHOST_EVICTION_POLICY]"),
    ] = None,
    max_request_bytes: Annotated[
        str | None, typer.Option(help="Largest request body [MODELHOST_MAX_REQUEST_BYTES]")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="[MODELHOST_LOG_LEVEL]")] = None,
) -> None:
    """Serve the models of a repository; models load on their first request."""
    from modelhost.cli.server import run_server

    settings = build_settings(
        model_repository=model_repository,
        host=host,
        port=port,
        grpc_port=grpc_port,
        memory_budget=memory_budget,
        idle_unload_seconds=idle_unload_seconds,
        eviction_policy=eviction_policy,
        max_request_bytes=max_request_bytes,
        log_level=log_level,
    )
    if "://" not in settings.model_repository and not Path(settings.model_repository).is_dir():
        raise typer.BadParameter(f"model repository {settings.model_repository} is not a folder")
    run_server(settings)


@app.command()
def demo(
    target: Annotated[Path, typer.Argument(help="Folder to write the demo models into")] = Path(
        "demo-models"
    ),
) -> None:
    """Build the demo models (an ONNX and a scikit-learn iris classifier) locally."""
    from modelhost.demo_models import build_demo_models

    names = build_demo_models(target)
    typer.echo(f"wrote {', '.join(names)} to {target}")


@db_app.command("upgrade")
def db_upgrade(
    database_url: Annotated[str | None, typer.Option(help=DATABASE_HELP)] = None,
) -> None:
    """Bring the database schema up to date (serve does this at start unless disabled)."""

    async def main() -> None:
        async with database(build_settings(database_url=database_url, db_auto_migrate=True)):
            pass

    asyncio.run(main())
    typer.echo("database schema is up to date")


if __name__ == "__main__":
    app()
