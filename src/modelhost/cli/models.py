"""``modelhost models push|pull``: versions into and out of the model store.

The store side of the ``models`` group (``cli/catalog.py`` holds the database side). Both
commands work on any repository URI, a folder or ``s3://bucket/prefix``, given by
``--model-repository`` or MODELHOST_MODEL_REPOSITORY (S3 settings: MODELHOST_S3_ENDPOINT,
MODELHOST_S3_REGION and the standard AWS credential variables).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from modelhost.cli.database import DATABASE_HELP
from modelhost.cli.database import run as run_with_database
from modelhost.cli.settings import build_settings
from modelhost.db.catalog import CatalogStore
from modelhost.errors import ModelhostError, ModelNotFound
from modelhost.manifest import read_manifest
from modelhost.storage.base import ModelStore, PushedVersion, check_model_name
from modelhost.storage.factory import open_store
from modelhost.storage.index import source_files
from modelhost.units import format_bytes

app = typer.Typer()

T = TypeVar("T")
RepositoryOption = Annotated[
    str | None,
    typer.Option(help="Folder or s3://bucket/prefix [MODELHOST_MODEL_REPOSITORY]"),
]


@app.command("push")
def push(
    source: Annotated[Path, typer.Argument(help="Folder holding model.yaml and the model files")],
    name: Annotated[str, typer.Option("--name", help="Model name")],
    version: Annotated[
        int | None, typer.Option(min=1, help="Version number; default: the highest stored + 1")
    ] = None,
    alias: Annotated[
        list[str] | None,
        typer.Option(help="Point this alias at the new version (repeatable)"),
    ] = None,
    model_repository: RepositoryOption = None,
    database_url: Annotated[str | None, typer.Option(help=DATABASE_HELP)] = None,
) -> None:
    """Upload a folder as a new version and register it; every file is hashed (sha256) as it
    is read."""
    try:
        total = sum(file.stat().st_size for file in source_files(source).values())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None

    async def work(store: ModelStore, advance: Callable[[int], None]) -> PushedVersion:
        return await store.put_version(
            name, source, version=version, aliases=alias or (), progress=advance
        )

    uri, pushed = _run(model_repository, f"push {name}", total, work)
    size = sum(info.size for info in pushed.files.values())
    typer.echo(
        f"pushed {name} version {pushed.version} to {uri}: "
        f"{len(pushed.files)} files, {format_bytes(size)}"
    )
    _register(source, pushed, alias or [], database_url)
    aliases = f", aliases {', '.join(alias)}" if alias else ""
    typer.echo(f"registered {name} version {pushed.version}{aliases}")


def _register(
    source: Path, pushed: PushedVersion, aliases: list[str], database_url: str | None
) -> None:
    """Record the pushed version (with every file's sha256) and its aliases in the registry."""
    try:
        manifest = read_manifest(source).model_dump(mode="json")
    except ModelhostError as exc:
        raise typer.BadParameter(exc.message) from None

    async def work(engine: AsyncEngine) -> None:
        registry = CatalogStore(engine)
        files = {path: info.to_json() for path, info in pushed.files.items()}
        # The same bytes pushed again (into a bucket that lost them) register as before.
        await registry.register_version(pushed.name, pushed.version, manifest, files, exist_ok=True)
        for alias_name in aliases:
            # Servers flip it only once they have loaded the version (catalog/sync.py).
            await registry.set_alias(pushed.name, alias_name, pushed.version)

    run_with_database(build_settings(database_url=database_url), work)


@app.command("pull")
def pull(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION (default: the highest)")],
    dest: Annotated[Path, typer.Argument(help="Folder to create (or an empty one)")],
    model_repository: RepositoryOption = None,
) -> None:
    """Download a version into a folder; every file is checked against its recorded sha256."""
    name, _, version_text = ref.partition(":")
    if version_text and not (version_text.isascii() and version_text.isdigit()):
        raise typer.BadParameter(f"{ref!r}: the version after ':' is a number")

    async def work(store: ModelStore, advance: Callable[[int], None]) -> tuple[int, int]:
        version = int(version_text) if version_text else await _latest(store, name)
        files = await store.download(name, version, dest, progress=advance)
        return version, sum(info.size for info in files.values())

    _, (version, size) = _run(model_repository, f"pull {ref}", None, work)
    typer.echo(f"pulled {name} version {version} into {dest}: {format_bytes(size)}, verified")


async def _latest(store: ModelStore, name: str) -> int:
    versions = (await store.list_models()).get(check_model_name(name))
    if not versions:
        raise ModelNotFound(f"{store.uri} holds no model {name!r}")
    return versions[-1]


def _run(
    repository: str | None,
    title: str,
    total: int | None,
    work: Callable[[ModelStore, Callable[[int], None]], Awaitable[T]],
) -> tuple[str, T]:
    """Run ``work`` against the repository's store with a progress bar; errors exit 1."""
    store = open_store(build_settings(model_repository=repository))

    async def main(advance: Callable[[int], None]) -> T:
        try:
            return await work(store, advance)
        finally:
            await store.close()

    try:
        with _progress(title, total) as advance:
            return store.uri, asyncio.run(main(advance))
    except ModelhostError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


@contextmanager
def _progress(title: str, total: int | None) -> Iterator[Callable[[int], None]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(title, total=total)
        yield lambda moved: progress.advance(task, moved)
