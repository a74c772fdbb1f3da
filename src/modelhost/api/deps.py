"""The caller, and the FastAPI dependencies of the management API, as ``Annotated`` aliases.

Each dependency hands a route the one component it needs; :func:`modelhost.app.management_api`
puts those on the management app's state.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from modelhost.auth.principal import NOBODY, Principal
from modelhost.cache.model_cache import ModelCache
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.catalog.sync import CatalogSync
from modelhost.db.usage import UsageStore
from modelhost.db.users import UserStore


def principal_of(request: Request) -> Principal:
    """The caller, as the auth middleware found it. Where it found none (a public path, or a
    route mounted outside it), the caller is nobody and may do nothing: access fails closed."""
    # Read from the scope's state itself: ``request.state`` wraps it in an object per request.
    principal: Principal = request.scope.get("state", {}).get("principal", NOBODY)
    return principal


def require_admin(principal: Annotated[Principal, Depends(principal_of)]) -> Principal:
    principal.require_admin()
    return principal


def users_of(request: Request) -> UserStore:
    users: UserStore = request.app.state.users
    return users


def usage_of(request: Request) -> UsageStore:
    usage: UsageStore = request.app.state.usage
    return usage


def catalog_sync_of(request: Request) -> CatalogSync:
    sync: CatalogSync = request.app.state.catalog_sync
    return sync


def catalog_of(request: Request) -> ModelCatalog:
    catalog: ModelCatalog = request.app.state.catalog
    return catalog


def model_cache_of(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.model_cache
    return cache


PrincipalDep = Annotated[Principal, Depends(principal_of)]
AdminDep = Annotated[Principal, Depends(require_admin)]
UsersDep = Annotated[UserStore, Depends(users_of)]
UsageDep = Annotated[UsageStore, Depends(usage_of)]
CatalogDep = Annotated[ModelCatalog, Depends(catalog_of)]
CatalogSyncDep = Annotated[CatalogSync, Depends(catalog_sync_of)]
ModelCacheDep = Annotated[ModelCache, Depends(model_cache_of)]
