"""``/api/v1/users``: users and their API keys (admins only)."""

from __future__ import annotations

from fastapi import APIRouter

from modelhost.api.deps import AdminDep, UsersDep
from modelhost.api.openapi import CONFLICT, ERRORS, NOT_FOUND, KeyId, UserName
from modelhost.api.schemas import (
    KeyCreate,
    KeyCreated,
    KeyPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from modelhost.auth.keys import new_key
from modelhost.db.users import ApiKey, User, UserStore
from modelhost.errors import Conflict

router = APIRouter(prefix="/users", tags=["users"], responses=ERRORS)


def _user(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        name=user.name,
        role=user.role,
        disabled=user.disabled,
        created_at=user.created_at,
    )


def _key(key: ApiKey) -> KeyPublic:
    return KeyPublic(
        key_id=key.key_id,
        name=key.name,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        allowed_models=key.allowed_models,
        requests_per_minute=key.requests_per_minute,
        max_in_flight=key.max_in_flight,
    )


async def issue_key(users: UserStore, user: User, spec: KeyCreate) -> KeyCreated:
    """Make a key for ``user``; the whole key is in the answer and nowhere else."""
    key_id, secret_hash, whole = new_key()
    key = await users.add_key(
        user,
        key_id=key_id,
        secret_hash=secret_hash,
        name=spec.name,
        expires_at=spec.expires_at,
        allowed_models=spec.allowed_models,
        requests_per_minute=spec.requests_per_minute,
        max_in_flight=spec.max_in_flight,
    )
    return KeyCreated(**_key(key).model_dump(), key=whole)


@router.post("", status_code=201, responses=CONFLICT)
async def create_user(body: UserCreate, users: UsersDep, _: AdminDep) -> UserPublic:
    return _user(await users.create_user(body.name, body.role))


@router.get("")
async def list_users(users: UsersDep, _: AdminDep) -> list[UserPublic]:
    return [_user(user) for user in await users.users()]


@router.patch("/{name}", responses=NOT_FOUND | CONFLICT)
async def update_user(
    name: UserName, body: UserUpdate, users: UsersDep, admin: AdminDep
) -> UserPublic:
    if body.disabled and (await users.user(name)).id == admin.user_id:
        # It would lock out the one asking; with the last admin, everyone.
        raise Conflict("you cannot disable yourself; another admin can")
    user = await users.set_disabled(name, body.disabled)
    return _user(user)


@router.post("/{name}/keys", status_code=201, responses=NOT_FOUND)
async def create_key(name: UserName, body: KeyCreate, users: UsersDep, _: AdminDep) -> KeyCreated:
    return await issue_key(users, await users.user(name), body)


@router.get("/{name}/keys", responses=NOT_FOUND)
async def list_keys(name: UserName, users: UsersDep, _: AdminDep) -> list[KeyPublic]:
    return [_key(key) for key in await users.keys(await users.user(name))]


@router.delete("/{name}/keys/{key_id}", responses=NOT_FOUND | CONFLICT)
async def revoke_key(name: UserName, key_id: KeyId, users: UsersDep, admin: AdminDep) -> KeyPublic:
    if key_id == admin.key_id:
        raise Conflict("you cannot revoke the key you are using; use another admin key")
    key = await users.revoke_key(key_id, owner=await users.user(name))
    return _key(key)
