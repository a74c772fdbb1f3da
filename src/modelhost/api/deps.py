"""FastAPI dependencies of the management API, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from modelhost.auth.principal import ANONYMOUS_ADMIN, Principal
from modelhost.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def principal_of(request: Request) -> Principal:
    """The caller, as the auth middleware found it (public paths have none)."""
    principal: Principal = getattr(request.state, "principal", ANONYMOUS_ADMIN)
    return principal


def require_admin(principal: Annotated[Principal, Depends(principal_of)]) -> Principal:
    principal.require_admin()
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(principal_of)]
AdminDep = Annotated[Principal, Depends(require_admin)]
