"""``create_app(settings)``: the ASGI application of one modelhost server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from modelhost.api.errors import EXCEPTION_HANDLERS
from modelhost.api.routes import cache, health, inference, models, openai, repository
from modelhost.services import build_services
from modelhost.settings import Settings


def create_app(settings: Settings) -> Starlette:
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    app = Starlette(
        routes=[
            *health.routes,
            *inference.routes,
            *models.routes,
            *repository.routes,
            *cache.routes,
            *openai.routes,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.services = services
    return app
