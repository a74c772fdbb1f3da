"""Server liveness, readiness and metadata (Open Inference Protocol)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.errors import error_response
from modelhost.api.responses import json_response
from modelhost.inference.metadata import EXTENSIONS, SERVER_NAME, SERVER_VERSION
from modelhost.lifecycle import Lifecycle


async def live(request: Request) -> Response:
    return json_response({"live": True})


async def server_metadata(request: Request) -> Response:
    return json_response(
        {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}
    )


def routes(lifecycle: Lifecycle) -> list[Route]:
    async def ready(request: Request) -> Response:
        if not lifecycle.ready:
            return error_response(503, "the server is not ready", "not_ready")
        return json_response({"ready": True})

    return [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
    ]
