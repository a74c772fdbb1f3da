"""``GET /api/v1/stats``: per-model traffic, queues, batches and loads as JSON (admins)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.deps import principal_of
from modelhost.api.requests import services_of
from modelhost.api.responses import json_response
from modelhost.observability.model_stats import model_stats


async def stats(request: Request) -> Response:
    principal_of(request).require_admin()
    services = services_of(request)
    return json_response(
        model_stats(
            services.metrics, services.catalog, services.cache, services.inference.schedulers()
        )
    )


routes = [Route("/api/v1/stats", stats, methods=["GET"])]
