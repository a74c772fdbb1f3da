"""The authenticator's key cache follows changes made through the user store at once: a revoked
key, or a disabled user's key, stops working on this replica without any route telling it to."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from modelhost.auth.authenticator import Authenticator
from modelhost.auth.keys import new_key
from modelhost.cli.database import database
from modelhost.db.users import UserStore
from modelhost.errors import Unauthorized
from modelhost.settings import Settings


def test_the_store_tells_the_authenticator_what_changed(database_url: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        users = UserStore(engine)
        # Lookups cached for an hour: only being told can make the cache let go.
        authenticator = Authenticator(users, cache_seconds=3600)
        ann = await users.create_user("ann", "user")
        bob = await users.create_user("bob", "user")
        keys = {}
        for owner in (ann, ann, bob):
            key_id, secret_hash, whole = new_key()
            await users.add_key(owner, key_id=key_id, secret_hash=secret_hash)
            keys[key_id] = f"Bearer {whole}"
        (ann_1, ann_2, bob_1) = keys
        for key_id, header in keys.items():
            assert (await authenticator.authenticate(header)).key_id == key_id

        await users.revoke_key(ann_1)
        with pytest.raises(Unauthorized, match="revoked"):
            await authenticator.authenticate(keys[ann_1])
        assert (await authenticator.authenticate(keys[ann_2])).key_id == ann_2

        await users.set_disabled("bob", True)
        with pytest.raises(Unauthorized, match="disabled"):
            await authenticator.authenticate(keys[bob_1])
        await users.set_disabled("bob", False)
        assert (await authenticator.authenticate(keys[bob_1])).key_id == bob_1

    async def main() -> None:
        async with database(Settings(database_url=database_url)) as engine:
            await work(engine)

    asyncio.run(main())


def test_a_verified_key_still_refuses_any_other_secret(database_url: str) -> None:
    """After a key's secret was checked once (its hash), later requests compare with that
    secret instead of hashing again: a different secret under the same key id, a prefix of it,
    a longer one, or one that is not ASCII, must still be refused, every time."""

    async def work(engine: AsyncEngine) -> None:
        users = UserStore(engine)
        authenticator = Authenticator(users, cache_seconds=3600)
        ann = await users.create_user("ann", "user")
        key_id, secret_hash, whole = new_key()
        await users.add_key(ann, key_id=key_id, secret_hash=secret_hash)
        good = f"Bearer {whole}"
        assert (await authenticator.authenticate(good)).key_id == key_id
        assert authenticator.authenticate_cached(good) is not None  # cached and verified now
        for forged in (whole[:-1] + ("A" if whole[-1] != "A" else "B"), whole[:-1], whole + "x",
                       whole[:-1] + "é"):  # fmt: skip
            for _ in range(2):
                with pytest.raises(Unauthorized, match="not valid"):
                    authenticator.authenticate_cached(f"Bearer {forged}")
        assert authenticator.authenticate_cached(good) is not None

    async def main() -> None:
        async with database(Settings(database_url=database_url)) as engine:
            await work(engine)

    asyncio.run(main())
