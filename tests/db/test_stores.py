"""The database layer on both databases: migrations, users and keys, registry, usage records."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from modelhost.cli.database import database
from modelhost.db.catalog import CatalogStore
from modelhost.db.engine import create_engine
from modelhost.db.timestamps import utcnow
from modelhost.db.usage import UsageRecord, UsageStore
from modelhost.db.users import UserStore
from modelhost.errors import Conflict, NotFound, VersionNotFound
from modelhost.settings import Settings

MANIFEST = {
    "runtime": "python",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
}


def with_db(url: str, work: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    async def main() -> None:
        async with database(Settings(database_url=url)) as engine:
            await work(engine)

    asyncio.run(main())


def record(model: str = "m", user_id: int | None = 1, status: int = 200) -> UsageRecord:
    return UsageRecord(
        record_id=str(uuid.uuid4()),
        user_id=user_id,
        key_id="k1",
        model=model,
        version=1,
        status=status,
        latency_ms=2.5,
        batch_size=4,
        bytes_in=100,
        bytes_out=50,
        created_at=utcnow(),
    )


def test_migrations_are_idempotent_and_users_and_keys_round_trip(database_url: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        users = UserStore(engine)
        alice = await users.create_user("alice", "admin")
        with pytest.raises(Conflict):
            await users.create_user("alice", "user")
        key = await users.add_key(
            alice,
            key_id="abcdef012345",
            secret_hash="0" * 64,
            expires_at=utcnow() + timedelta(days=1),
            allowed_models=["iris"],
            requests_per_minute=10,
        )
        found = await users.key_with_owner("abcdef012345")
        assert found is not None
        got_key, owner = found
        assert owner.name == "alice" and owner.role == "admin"
        assert got_key.allowed_models == ["iris"] and got_key.expires_at is not None
        assert got_key.expires_at.tzinfo is not None  # UTC-aware on both databases
        revoked = await users.revoke_key(key.key_id)
        assert revoked.revoked_at is not None
        assert (await users.revoke_key(key.key_id)).revoked_at == revoked.revoked_at
        with pytest.raises(NotFound):
            await users.revoke_key("nope")
        assert (await users.set_disabled("alice", True)).disabled
        assert await users.key_with_owner("missing") is None

    with_db(database_url, work)
    with_db(database_url, lambda engine: asyncio.sleep(0))  # a second upgrade changes nothing


def test_registry_versions_aliases_and_tombstones(database_url: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        registry = CatalogStore(engine)
        files = {
            "model.py": {"size": 10, "sha256": None},
            "model.yaml": {"size": 5, "sha256": None},
        }
        row = await registry.register_version("m", 1, MANIFEST, files)
        assert row.size_bytes == 15 and row.status == "registered"
        await registry.register_version("m", 2, MANIFEST, files)
        with pytest.raises(Conflict):
            await registry.register_version("m", 2, MANIFEST, files)
        # What is already there, byte for byte, is no conflict when the caller says so.
        again = await registry.register_version("m", 2, MANIFEST, files, exist_ok=True)
        assert again.version == 2 and again.files == files
        with pytest.raises(Conflict):
            changed = {**MANIFEST, "max_batch_size": 4}
            await registry.register_version("m", 2, changed, files, exist_ok=True)
        await registry.set_alias("m", "production", 1)
        await registry.set_alias("m", "production", 2)
        with pytest.raises(VersionNotFound):
            await registry.set_alias("m", "production", 9)
        snapshot = await registry.snapshot()
        assert snapshot.aliases == {"m": {"production": 2}}
        await registry.delete_version("m", 2)
        snapshot = await registry.snapshot()
        assert list(snapshot.versions["m"]) == [1] and snapshot.aliases == {}
        assert (await registry.snapshot(include_deleted=True)).versions["m"][2].status == "deleted"
        await registry.register_version("m", 2, MANIFEST, files)  # brought back on purpose
        assert list((await registry.snapshot()).versions["m"]) == [1, 2]

    with_db(database_url, work)


def test_a_usage_record_reads_back_as_written(database_url: str) -> None:
    """Every field, each with a value no other field has, in its own column (SQLite's insert
    hands the driver tuples in the table's order), and the timestamp to the microsecond."""

    async def work(engine: AsyncEngine) -> None:
        usage = UsageStore(engine)
        written = [
            UsageRecord(
                record_id=str(uuid.uuid4()),
                user_id=7,
                key_id="key-one",
                model="model-one",
                version=3,
                status=429,
                latency_ms=12.75,
                batch_size=5,
                bytes_in=11,
                bytes_out=13,
                created_at=datetime(2026, 12, 1, 7, 12, 16, 206258, tzinfo=UTC),
            ),
            UsageRecord(
                record_id=str(uuid.uuid4()),
                user_id=None,
                key_id=None,
                model="model-two",
                version=None,
                status=200,
                latency_ms=0.5,
                batch_size=1,
                bytes_in=0,
                bytes_out=17,
                created_at=datetime(2026, 12, 1, 7, 12, 17, tzinfo=UTC),  # no microseconds
            ),
        ]
        await usage.insert(written)
        read = [r for _, r in await usage.records(limit=10)]
        assert sorted(read, key=lambda r: r.model) == written
        window = await usage.records(
            since=datetime(2026, 12, 1, 7, 12, 16, 206258, tzinfo=UTC),
            until=datetime(2026, 12, 1, 7, 12, 17, 1, tzinfo=UTC),
        )
        assert len(window) == 2  # compared as the database keeps them, to the microsecond
        assert not await usage.records(since=datetime(2026, 12, 1, 7, 12, 17, 1, tzinfo=UTC))

    with_db(database_url, work)


def test_usage_inserts_are_idempotent_paged_and_summarized(database_url: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        usage = UsageStore(engine)
        records = [record("a") for _ in range(5)] + [record("b", user_id=2, status=503)]
        await usage.insert(records)
        await usage.insert(records[:3])  # a journal replayed twice
        assert await usage.count() == 6
        first = await usage.records(user_id=1, limit=3)
        assert len(first) == 3 and first[0][0] > first[-1][0]  # newest first
        rest = await usage.records(user_id=1, limit=3, before_id=first[-1][0])
        assert len(rest) == 2
        assert {r.record_id for _, r in first + rest} == {r.record_id for r in records[:5]}
        assert await usage.records(model="b") and not await usage.records(model="zzz")
        later = await usage.records(since=utcnow() + timedelta(minutes=1))
        assert later == []
        summary = {s.model: s for s in await usage.summary()}
        assert summary["a"].requests == 5 and summary["a"].errors == 0
        assert summary["b"].errors == 1 and summary["b"].bytes_in == 100

    with_db(database_url, work)


def test_busiest_versions_of_the_last_hour_for_a_warm_restart(database_url: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        usage = UsageStore(engine)
        old = dataclasses.replace(record("stale"), created_at=utcnow() - timedelta(hours=2))
        v2 = [dataclasses.replace(record("a"), version=2) for _ in range(2)]
        await usage.insert(
            [record("a") for _ in range(3)]
            + v2
            + [record("b") for _ in range(4)]
            + [record("c", status=503) for _ in range(9)]  # refused: no demand served
            + [dataclasses.replace(record("d"), version=None)]  # never resolved to a version
            + [old]
        )
        hour_ago = utcnow() - timedelta(hours=1)
        busiest = await usage.busiest_versions(since=hour_ago, models=frozenset({"a", "b", "d"}))
        assert [(d.model, d.version, d.requests) for d in busiest] == [
            ("b", 1, 4),
            ("a", 1, 3),
            ("a", 2, 2),
        ]
        only_a = await usage.busiest_versions(since=hour_ago, models=frozenset({"a"}), limit=1)
        assert [(d.model, d.version) for d in only_a] == [("a", 1)]

    with_db(database_url, work)


def test_replicas_registering_the_same_versions_at_once_all_succeed(database_url: str) -> None:
    """Several replicas scan one store at the same moment and register what they find: the
    losers of each insert race see the winner's row, not an error (issue 10)."""

    async def work(engine: AsyncEngine) -> None:
        files = {"model.py": {"size": 10, "sha256": "ab" * 32}}
        engines = [create_engine(Settings(database_url=database_url)) for _ in range(4)]
        try:
            for _ in range(2):  # fresh rows, then rows that exist
                await asyncio.gather(
                    *(
                        CatalogStore(replica).ensure_version(f"m{i}", 1, MANIFEST, files)
                        for replica in engines
                        for i in range(6)
                    )
                )
            # A manifest edited in the store meanwhile is taken by whoever scans it.
            edited = {**MANIFEST, "max_batch_size": 8}
            await asyncio.gather(
                *(
                    CatalogStore(replica).ensure_version("m0", 1, edited, files)
                    for replica in engines
                )
            )
        finally:
            for replica in engines:
                await replica.dispose()
        snapshot = await CatalogStore(engine).snapshot()
        assert sorted(snapshot.versions) == [f"m{i}" for i in range(6)]
        assert all(list(versions) == [1] for versions in snapshot.versions.values())
        assert snapshot.versions["m0"][1].manifest == edited

    with_db(database_url, work)
