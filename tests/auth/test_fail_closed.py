"""Access fails closed: where no principal was found, the caller may do nothing. Only
MODELHOST_AUTH=disabled (the auth middleware without an authenticator) makes callers admins.

Tiny real apps, called in process: a route that runs without the auth middleware in front of it
(a public path, a route mounted outside it) must not get an anonymous admin.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from modelhost.api.deps import AdminDep, principal_of
from modelhost.api.errors import EXCEPTION_HANDLERS
from modelhost.auth.middleware import AuthMiddleware
from modelhost.auth.quotas import Limits, LocalQuotas
from modelhost.cache.loader import LoadedModel
from modelhost.cache.model_cache import ModelCache
from modelhost.catalog.model_catalog import ModelCatalog, ModelRef
from modelhost.errors import Forbidden
from modelhost.inference.service import InferenceService
from modelhost.inference.types import InferenceRequest, Tensor


async def admin_only(request: Request) -> Response:
    principal_of(request).require_admin()
    return PlainTextResponse("admin")


async def model_user(request: Request) -> Response:
    principal_of(request).require_model("m")
    return PlainTextResponse("model")


def _app(middleware: list[Middleware]) -> Starlette:
    management = FastAPI(exception_handlers=EXCEPTION_HANDLERS)

    @management.get("/admin")
    async def admin(_: AdminDep) -> str:
        return "admin"

    return Starlette(
        routes=[
            Route("/admin", admin_only),
            Route("/model", model_user),
            Mount("/api", app=management),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=middleware,
    )


@pytest.mark.parametrize("path", ["/admin", "/model", "/api/admin"])
def test_no_principal_means_no_rights(path: str) -> None:
    # No auth middleware in front, as on a public path: nobody found, nothing allowed.
    with TestClient(_app([])) as client:
        response = client.get(path)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize("path", ["/admin", "/model", "/api/admin"])
def test_public_paths_carry_no_rights(path: str) -> None:
    public = frozenset({"/admin", "/model", "/api/admin"})
    auth = Middleware(AuthMiddleware, authenticator=None, public_paths=public)
    with TestClient(_app([auth])) as client:
        assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", ["/admin", "/model", "/api/admin"])
def test_only_disabled_auth_makes_an_anonymous_admin(path: str) -> None:
    auth = Middleware(AuthMiddleware, authenticator=None, public_paths=frozenset())
    with TestClient(_app([auth])) as client:
        assert client.get(path).status_code == 200


class _NeverLoads:
    """A loader the service must never reach: the caller has no right to the model."""

    async def estimate_bytes(self, ref: ModelRef) -> int:
        raise AssertionError("a caller with no rights got as far as a load")

    async def load(self, ref: ModelRef) -> LoadedModel:
        raise AssertionError("a caller with no rights got as far as a load")

    async def unload(self, model: LoadedModel) -> None:
        raise AssertionError("unreachable")


def test_the_inference_service_serves_nobody_by_default() -> None:
    service = InferenceService(
        ModelCatalog(),
        ModelCache(_NeverLoads(), budget=1 << 30),
        default_timeout=1.0,
        quotas=LocalQuotas(Limits(None, None)),
    )
    x = Tensor("x", "FP32", np.ones(1, dtype=np.float32))
    with pytest.raises(Forbidden):
        asyncio.run(service.infer(InferenceRequest("m", None, [x])))
