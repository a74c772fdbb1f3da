"""Users and their API keys in the database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from modelhost.db.tables import api_keys, users
from modelhost.db.timestamps import as_utc, utcnow
from modelhost.errors import Conflict, NotFound

ROLES = ("admin", "user")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    """A key's record; the secret itself is never stored, only its hash."""

    id: int
    key_id: str
    user_id: int
    secret_hash: str
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    allowed_models: list[str] | None
    requests_per_minute: int | None
    max_in_flight: int | None


def _user(row: Any) -> User:
    return User(row.id, row.name, row.role, bool(row.disabled), as_utc(row.created_at))


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        key_id=row.key_id,
        user_id=row.user_id,
        secret_hash=row.secret_hash,
        name=row.name,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        allowed_models=row.allowed_models,
        requests_per_minute=row.requests_per_minute,
        max_in_flight=row.max_in_flight,
    )


# Told, after a change that can stop keys from working, which key changed (None: any of them).
KeysChanged = Callable[[str | None], None]


class UserStore:
    """Reads and writes users and keys; every method is one short transaction.

    Whoever caches what keys may do (the authenticator) registers with :meth:`on_keys_changed`
    and is told of every revocation and every user disabled or enabled through this store.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._listeners: list[KeysChanged] = []

    def on_keys_changed(self, listener: KeysChanged) -> None:
        self._listeners.append(listener)

    def _keys_changed(self, key_id: str | None) -> None:
        for listener in self._listeners:
            listener(key_id)

    async def create_user(self, name: str, role: str) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        try:
            async with self._engine.begin() as db:
                result = await db.execute(
                    insert(users)
                    .values(name=name, role=role, disabled=False, created_at=utcnow())
                    .returning(*users.c)
                )
                return _user(result.one())
        except IntegrityError:
            raise Conflict(f"a user named {name!r} already exists") from None

    async def users(self) -> list[User]:
        async with self._engine.connect() as db:
            rows = await db.execute(select(users).order_by(users.c.id))
            return [_user(row) for row in rows]

    async def count(self) -> int:
        async with self._engine.connect() as db:
            return int((await db.execute(select(func.count()).select_from(users))).scalar_one())

    async def user(self, name: str) -> User:
        async with self._engine.connect() as db:
            row = (await db.execute(select(users).where(users.c.name == name))).one_or_none()
        if row is None:
            raise NotFound(f"no user named {name!r}")
        return _user(row)

    async def set_disabled(self, name: str, disabled: bool) -> User:
        async with self._engine.begin() as db:
            result = await db.execute(
                update(users)
                .where(users.c.name == name)
                .values(disabled=disabled)
                .returning(*users.c)
            )
            row = result.one_or_none()
        if row is None:
            raise NotFound(f"no user named {name!r}")
        self._keys_changed(None)  # every key of the user
        return _user(row)

    async def add_key(
        self,
        user: User,
        *,
        key_id: str,
        secret_hash: str,
        name: str | None = None,
        expires_at: datetime | None = None,
        allowed_models: list[str] | None = None,
        requests_per_minute: int | None = None,
        max_in_flight: int | None = None,
    ) -> ApiKey:
        async with self._engine.begin() as db:
            result = await db.execute(
                insert(api_keys)
                .values(
                    key_id=key_id,
                    user_id=user.id,
                    secret_hash=secret_hash,
                    name=name,
                    created_at=utcnow(),
                    expires_at=expires_at,
                    allowed_models=allowed_models,
                    requests_per_minute=requests_per_minute,
                    max_in_flight=max_in_flight,
                )
                .returning(*api_keys.c)
            )
            return _key(result.one())

    async def keys(self, user: User) -> list[ApiKey]:
        async with self._engine.connect() as db:
            rows = await db.execute(
                select(api_keys).where(api_keys.c.user_id == user.id).order_by(api_keys.c.id)
            )
            return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str, owner: User | None = None) -> ApiKey:
        """Revoke key ``key_id`` (only if it is ``owner``'s, when an owner is given)."""
        this_key = [api_keys.c.key_id == key_id]
        if owner is not None:
            this_key.append(api_keys.c.user_id == owner.id)
        async with self._engine.begin() as db:
            result = await db.execute(
                update(api_keys)
                .where(*this_key, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
                .returning(*api_keys.c)
            )
            row = result.one_or_none()
            if row is None:
                existing = await db.execute(select(api_keys).where(*this_key))
                row = existing.one_or_none()
        if row is None:
            whose = f"user {owner.name!r} has" if owner is not None else "there is"
            raise NotFound(f"{whose} no API key {key_id!r}")
        self._keys_changed(key_id)
        return _key(row)

    async def key_with_owner(self, key_id: str) -> tuple[ApiKey, User] | None:
        """The key and its user, for authentication."""
        query = (
            select(
                api_keys,
                users.c.name.label("user_name"),
                users.c.role.label("user_role"),
                users.c.disabled.label("user_disabled"),
                users.c.created_at.label("user_created_at"),
            )
            .join(users, users.c.id == api_keys.c.user_id)
            .where(api_keys.c.key_id == key_id)
        )
        async with self._engine.connect() as db:
            row = (await db.execute(query)).one_or_none()
        if row is None:
            return None
        owner = User(
            row.user_id,
            row.user_name,
            row.user_role,
            bool(row.user_disabled),
            as_utc(row.user_created_at),
        )
        return _key(row), owner
