"""The authenticator's cache: requests that find a key's entry expired share one lookup."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelhost.auth.authenticator import Authenticator
from modelhost.auth.keys import new_key
from modelhost.db.engine import create_engine
from modelhost.db.migrate import upgrade
from modelhost.db.users import ApiKey, User, UserStore
from modelhost.settings import Settings


class CountingUserStore(UserStore):
    """The real store, counting the key lookups that reach the database."""

    lookups = 0

    async def key_with_owner(self, key_id: str) -> tuple[ApiKey, User] | None:
        self.lookups += 1
        await asyncio.sleep(0.05)  # a database that takes a moment: the requests overlap
        return await super().key_with_owner(key_id)


def test_a_busy_key_costs_one_lookup_per_interval(tmp_path: Path) -> None:
    now = [0.0]

    async def run() -> tuple[int, int]:
        engine = create_engine(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
        try:
            await upgrade(engine)
            users = CountingUserStore(engine)
            user = await users.create_user("busy", "user")
            key_id, secret_hash, whole = new_key()
            await users.add_key(user, key_id=key_id, secret_hash=secret_hash)
            auth = Authenticator(users, cache_seconds=5.0, clock=lambda: now[0])
            first = await asyncio.gather(*(auth.authenticate(f"Bearer {whole}") for _ in range(32)))
            after_first = users.lookups
            now[0] = 6.0  # the entry expired: 32 requests arrive at once again
            again = await asyncio.gather(*(auth.authenticate(f"Bearer {whole}") for _ in range(32)))
            assert {p.name for p in [*first, *again]} == {"busy"}
            return after_first, users.lookups
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == (1, 2)
