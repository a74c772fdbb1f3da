"""Usage history: ``/api/v1/me/usage`` for everyone, ``/api/v1/usage`` for admins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from modelhost.api.deps import AdminDep, PrincipalDep, UsageDep, UsersDep
from modelhost.api.openapi import ERRORS, LARGEST_ID, NOT_FOUND
from modelhost.api.schemas import DateTime, ModelUsage, UsagePage, UsagePublic
from modelhost.db.usage import UsageStore
from modelhost.errors import NotFound

router = APIRouter(tags=["usage"], responses=ERRORS)


@dataclass
class UsageQuery:
    """Filters and paging shared by the usage listings (query parameters)."""

    model: str | None = None
    since: DateTime | None = None
    until: DateTime | None = None
    limit: Annotated[int, Query(ge=1, le=1000)] = 100
    before_id: Annotated[int | None, Query(ge=1, le=LARGEST_ID)] = None

    async def page(self, usage: UsageStore, user_id: int | None) -> UsagePage:
        """Newest first; ``next_before_id`` continues where this page ends."""
        rows = await usage.records(
            user_id=user_id,
            model=self.model,
            since=self.since,
            until=self.until,
            limit=self.limit,
            before_id=self.before_id,
        )
        records = [UsagePublic(id=row_id, **record.to_json()) for row_id, record in rows]
        full = len(records) == self.limit
        return UsagePage(records=records, next_before_id=records[-1].id if full else None)


QueryDep = Annotated[UsageQuery, Depends()]


@router.get("/me/usage", responses=NOT_FOUND)
async def my_usage(store: UsageDep, principal: PrincipalDep, query: QueryDep) -> UsagePage:
    """Your own requests, newest first."""
    if principal.user_id is None:
        raise NotFound("anonymous callers (auth disabled) have no usage history of their own")
    return await query.page(store, principal.user_id)


@router.get("/usage", responses=NOT_FOUND)
async def usage(
    store: UsageDep, users: UsersDep, _: AdminDep, query: QueryDep, user: str | None = None
) -> UsagePage:
    """Anyone's requests (admins)."""
    user_id = (await users.user(user)).id if user is not None else None
    return await query.page(store, user_id)


@router.get("/usage/summary")
async def usage_summary(
    store: UsageDep,
    _: AdminDep,
    since: DateTime | None = None,
    until: DateTime | None = None,
) -> list[ModelUsage]:
    """Requests, errors, mean latency and bytes per model (admins)."""
    rows = await store.summary(since=since, until=until)
    return [ModelUsage(**vars(row)) for row in rows]
