"""``modelhost users``: users and API keys, straight in the database."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from modelhost.auth.keys import new_key
from modelhost.cli.database import DATABASE_HELP, run
from modelhost.cli.settings import build_settings
from modelhost.db.timestamps import utcnow
from modelhost.db.users import UserStore

app = typer.Typer(help="Users and their API keys.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of a user.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DatabaseOption = Annotated[str | None, typer.Option(help=DATABASE_HELP)]


@app.command("create")
def create(
    name: str,
    role: Annotated[str, typer.Option(help="admin or user")] = "user",
    database_url: DatabaseOption = None,
) -> None:
    """Create a user and a first API key; the key is the last line printed (shown once)."""
    if role not in ("admin", "user"):
        raise typer.BadParameter("role must be admin or user")

    async def work(engine: AsyncEngine) -> str:
        users = UserStore(engine)
        user = await users.create_user(name, role)
        key_id, secret_hash, whole = new_key()
        await users.add_key(user, key_id=key_id, secret_hash=secret_hash, name="first key")
        typer.echo(f"created {role} {name!r} with API key {key_id}", err=True)
        return whole

    typer.echo(run(build_settings(database_url=database_url), work))


@app.command("ls")
def list_users(database_url: DatabaseOption = None) -> None:
    """List users."""

    async def work(engine: AsyncEngine) -> None:
        for user in await UserStore(engine).users():
            state = "disabled" if user.disabled else "active"
            typer.echo(f"{user.name}\t{user.role}\t{state}\t{user.created_at:%Y-%m-%d %H:%M}")

    run(build_settings(database_url=database_url), work)


@app.command("disable")
def disable(name: str, database_url: DatabaseOption = None) -> None:
    """Disable a user: every key of theirs stops working."""
    _set_disabled(name, True, database_url)


@app.command("enable")
def enable(name: str, database_url: DatabaseOption = None) -> None:
    """Enable a disabled user again: their keys that are neither revoked nor expired work."""
    _set_disabled(name, False, database_url)


def _set_disabled(name: str, disabled: bool, database_url: str | None) -> None:
    async def work(engine: AsyncEngine) -> None:
        await UserStore(engine).set_disabled(name, disabled)

    run(build_settings(database_url=database_url), work)
    typer.echo(f"{'disabled' if disabled else 'enabled'} {name!r}")


@keys_app.command("create")
def create_key(
    name: str,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this long")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models it may use")] = None,
    requests_per_minute: Annotated[int | None, typer.Option(min=1)] = None,
    max_in_flight: Annotated[int | None, typer.Option(min=1)] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Issue another key for a user; the key is the last line printed (shown once)."""

    async def work(engine: AsyncEngine) -> str:
        users = UserStore(engine)
        user = await users.user(name)
        key_id, secret_hash, whole = new_key()
        await users.add_key(
            user,
            key_id=key_id,
            secret_hash=secret_hash,
            expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
            allowed_models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
            requests_per_minute=requests_per_minute,
            max_in_flight=max_in_flight,
        )
        typer.echo(f"issued API key {key_id} for {name!r}", err=True)
        return whole

    typer.echo(run(build_settings(database_url=database_url), work))


@keys_app.command("ls")
def list_keys(name: str, database_url: DatabaseOption = None) -> None:
    """List a user's keys (ids only: the keys themselves are not stored)."""

    async def work(engine: AsyncEngine) -> None:
        users = UserStore(engine)
        for key in await users.keys(await users.user(name)):
            state = "revoked" if key.revoked_at else "active"
            expires = f"expires {key.expires_at:%Y-%m-%d %H:%M}" if key.expires_at else ""
            typer.echo(f"{key.key_id}\t{state}\t{expires}")

    run(build_settings(database_url=database_url), work)


@keys_app.command("revoke")
def revoke_key(key_id: str, database_url: DatabaseOption = None) -> None:
    """Revoke a key (other replicas stop accepting it within MODELHOST_AUTH_CACHE_SECONDS)."""

    async def work(engine: AsyncEngine) -> None:
        await UserStore(engine).revoke_key(key_id)

    run(build_settings(database_url=database_url), work)
    typer.echo(f"revoked {key_id}")
