"""``GET /api/v1/me``: who the caller's key says they are, and what it allows."""

from __future__ import annotations

from fastapi import APIRouter

from modelhost.api.deps import PrincipalDep
from modelhost.api.openapi import ERRORS
from modelhost.api.schemas import MePublic

router = APIRouter(tags=["me"], responses={401: ERRORS[401]})


@router.get("/me")
async def me(principal: PrincipalDep) -> MePublic:
    """The signed-in identity (the console shows admin pages only to admins)."""
    return MePublic(
        name=principal.name,
        role=principal.role,
        user_id=principal.user_id,
        key_id=principal.key_id,
        allowed_models=sorted(principal.allowed_models)
        if principal.allowed_models is not None
        else None,
    )
