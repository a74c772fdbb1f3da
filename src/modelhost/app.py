"""``create_app(settings)``: the ASGI application of one modelhost server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware

from modelhost import __version__
from modelhost.api.errors import EXCEPTION_HANDLERS
from modelhost.api.middleware import RequestContextMiddleware
from modelhost.api.routes import (
    cache,
    health,
    inference,
    metrics,
    models,
    openai,
    registry,
    repository,
)
from modelhost.api.routes import usage as usage_routes
from modelhost.api.routes import users as user_routes
from modelhost.auth.middleware import PUBLIC_PATHS, AuthMiddleware
from modelhost.services import build_services
from modelhost.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="modelhost",
        version=__version__,
        routes=[
            # The Open Inference Protocol's routes are plain Starlette: no per-request
            # dependency solving on the hot path.
            *health.routes,
            *inference.routes,
            *models.routes,
            *repository.routes,
            *cache.routes,
            *openai.routes,
            *metrics.routes,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            # Outermost first: every request gets its id and log line, even a refused one.
            Middleware(RequestContextMiddleware, services=services),
            Middleware(
                AuthMiddleware,
                authenticator=services.authenticator,
                public_paths=PUBLIC_PATHS | ({"/metrics"} if settings.metrics_public else set()),
            ),
        ],
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    for router in (registry.router, user_routes.router, usage_routes.router):
        app.include_router(router)
    app.state.services = services
    return app
