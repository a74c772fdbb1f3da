"""Usage history: ``/api/v1/me/usage`` for everyone, ``/api/v1/usage`` for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from modelhost.api.deps import AdminDep, PrincipalDep, ServicesDep
from modelhost.api.schemas import ModelUsage, UsagePage, UsagePublic
from modelhost.errors import NotFound
from modelhost.services import Services

router = APIRouter(tags=["usage"])

Limit = Annotated[int, Query(ge=1, le=1000)]


async def _page(
    services: Services,
    user_id: int | None,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    before_id: int | None,
) -> UsagePage:
    rows = await services.usage.records(
        user_id=user_id, model=model, since=since, until=until, limit=limit, before_id=before_id
    )
    records = [UsagePublic(id=row_id, **record.to_json()) for row_id, record in rows]
    return UsagePage(
        records=records, next_before_id=records[-1].id if len(records) == limit else None
    )


@router.get("/me/usage")
async def my_usage(
    services: ServicesDep,
    principal: PrincipalDep,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 100,
    before_id: int | None = None,
) -> UsagePage:
    """Your own requests, newest first."""
    if principal.user_id is None:
        raise NotFound("anonymous callers (auth disabled) have no usage history of their own")
    return await _page(services, principal.user_id, model, since, until, limit, before_id)


@router.get("/usage")
async def usage(
    services: ServicesDep,
    _: AdminDep,
    user: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 100,
    before_id: int | None = None,
) -> UsagePage:
    """Anyone's requests (admins)."""
    user_id = (await services.users.user(user)).id if user is not None else None
    return await _page(services, user_id, model, since, until, limit, before_id)


@router.get("/usage/summary")
async def usage_summary(
    services: ServicesDep,
    _: AdminDep,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ModelUsage]:
    """Requests, errors, mean latency and bytes per model (admins)."""
    rows = await services.usage.summary(since=since, until=until)
    return [ModelUsage(**vars(row)) for row in rows]
