"""``GET /api/v1/stats``: per-model traffic, queues, batches and loads as JSON (admins)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.deps import principal_of
from modelhost.api.responses import json_response


def routes(figures: Callable[[], dict[str, Any]]) -> list[Route]:
    """``figures`` reads the per-model numbers when asked (:mod:`observability.model_stats`)."""

    async def stats(request: Request) -> Response:
        principal_of(request).require_admin()
        return json_response(figures())

    return [Route("/api/v1/stats", stats, methods=["GET"])]
