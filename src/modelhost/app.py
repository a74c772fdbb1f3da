"""``create_app(settings)``: the ASGI application of one modelhost server.

The Open Inference Protocol's routes are plain Starlette, so they pay for no per-request
dependency solving; the inference routes themselves are answered ahead of Starlette's own
middleware and router (:mod:`modelhost.api.hot_routes`). The management API (``/api/v1``) is a
FastAPI app mounted beside them: validated bodies and OpenAPI docs (``/api/v1/docs``) where
requests are rare.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from grpc import aio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, ExceptionHandler, Lifespan

from modelhost import __version__
from modelhost.api.body_decoder import BodyDecoder
from modelhost.api.errors import EXCEPTION_HANDLERS
from modelhost.api.hot_routes import HotRoutes
from modelhost.api.middleware import RequestContextMiddleware
from modelhost.api.openapi import install_openapi
from modelhost.api.routes import metrics, openai
from modelhost.api.routes.management import cache, stats
from modelhost.api.routes.management import me as me_routes
from modelhost.api.routes.management import models as catalog_routes
from modelhost.api.routes.management import usage as usage_routes
from modelhost.api.routes.management import users as user_routes
from modelhost.api.routes.v2 import health, infer, repository
from modelhost.api.routes.v2 import models as v2_models
from modelhost.auth.middleware import PUBLIC_PATHS, AuthMiddleware
from modelhost.console.assets import ConsoleAssets
from modelhost.console.routes import PREFIX as CONSOLE
from modelhost.console.routes import console_routes
from modelhost.grpc.server import start_grpc_server
from modelhost.observability.model_stats import model_stats
from modelhost.services import Services, build_services
from modelhost.settings import Settings


class ModelhostApp(Starlette):
    """Starlette, with the request context and auth middleware outermost and the hot routes
    served right inside them, ahead of Starlette's error middleware and router (which every
    other request still goes through). The request context middleware answers what escapes
    the hot routes' own handling (a 500), as Starlette's error middleware does for the rest."""

    def __init__(
        self,
        *,
        routes: list[BaseRoute],
        hot_routes: list[Route],
        outer_middleware: list[Middleware],
        exception_handlers: Mapping[Any, ExceptionHandler],
        lifespan: Lifespan[Starlette],
    ) -> None:
        # The hot routes stay in the route list as well: the router answers their other methods
        # (405 with Allow) and the OpenAPI document lists them.
        super().__init__(
            routes=[*hot_routes, *routes], exception_handlers=exception_handlers, lifespan=lifespan
        )
        self._hot_routes = hot_routes
        self._outer_middleware = outer_middleware

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = HotRoutes(super().build_middleware_stack(), self._hot_routes)
        for cls, args, kwargs in reversed(self._outer_middleware):
            app = cls(app, *args, **kwargs)
        return app


def management_api(services: Services) -> FastAPI:
    api = FastAPI(
        title="modelhost management API",
        version=__version__,
        exception_handlers=EXCEPTION_HANDLERS,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    install_openapi(api)  # 400s, not 422s; the bearer key; patterns
    api.include_router(catalog_routes.router)
    api.include_router(user_routes.router)
    api.include_router(usage_routes.router)
    api.include_router(me_routes.router)
    # What the routers' dependencies (api/deps.py) hand out: one component each.
    api.state.users = services.users
    api.state.usage = services.usage
    api.state.catalog = services.catalog
    api.state.catalog_sync = services.sync
    api.state.model_cache = services.cache
    return api


async def start_grpc(settings: Settings, services: Services) -> aio.Server | None:
    """The gRPC transport on its own port, when ``grpc_port`` is set."""
    if settings.grpc_port is None:
        return None
    server, _ = await start_grpc_server(
        host=settings.host,
        port=settings.grpc_port,
        max_message_bytes=settings.max_request_bytes,
        inference=services.inference,
        repository=services.repository,
        catalog=services.catalog,
        lifecycle=services.lifecycle,
        authenticator=services.authenticator,
        metering=services.metering,
    )
    return server


def create_app(settings: Settings) -> Starlette:
    services = build_services(settings)
    decoder = BodyDecoder()  # big request bodies are decoded off the event loop

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        try:
            grpc_server = await start_grpc(settings, services)
            try:
                yield
            finally:
                if grpc_server is not None:
                    # Calls in flight had the drain's grace period already.
                    await grpc_server.stop(grace=1.0)
        finally:
            decoder.close()
            await services.stop()

    public = PUBLIC_PATHS | {CONSOLE} | ({"/metrics"} if settings.metrics_public else set())
    inference, metering = services.inference, services.metering
    max_body = settings.max_request_bytes
    app = ModelhostApp(
        hot_routes=infer.routes(inference, metering, decoder, max_body),
        routes=[
            *v2_models.routes(services.catalog, services.repository),
            *health.routes(services.lifecycle),
            *repository.routes(services.repository),
            *openai.routes(inference, metering, decoder, max_body),
            *metrics.routes(services.metrics.registry),
            *cache.routes(services.cache.snapshot, inference.queues),
            *stats.routes(
                lambda: model_stats(
                    services.metrics, services.catalog, services.cache, inference.queues()
                )
            ),
            Mount("/api/v1", app=management_api(services)),
            *console_routes(ConsoleAssets.load()),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        outer_middleware=[
            # Outermost first: every request gets its id and log line, even a refused one.
            Middleware(RequestContextMiddleware, lifecycle=services.lifecycle),
            Middleware(
                AuthMiddleware,
                authenticator=services.authenticator,
                public_paths=public,
                # The console's page and assets hold no data; it calls the API with a key.
                public_prefixes=(CONSOLE + "/",),
            ),
        ],
        lifespan=lifespan,
    )
    app.state.lifecycle = services.lifecycle  # for the server runner's graceful shutdown
    return app
