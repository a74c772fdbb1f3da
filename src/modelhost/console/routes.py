"""``GET /console[/...]``: the console's page and assets.

They are public (the page asks for an API key and keeps it in session storage; the assets hold no
data), so the auth middleware lets ``/console`` through; everything the page shows comes from the
public API, called with the person's key.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelhost.api.errors import error_response
from modelhost.console.assets import SECURITY_HEADERS, ConsoleAssets

PREFIX = "/console"


def console_routes(assets: ConsoleAssets) -> list[BaseRoute]:
    """The console's routes, serving ``assets``."""

    async def serve(request: Request) -> Response:
        path = request.path_params.get("path", "")
        asset = assets.get(path)
        if asset is None:
            if not assets.files:
                return error_response(
                    404,
                    "the console is not built into this install: run scripts/build-console",
                    "not_found",
                )
            return error_response(404, f"no console file {path!r}", "not_found")
        headers = {
            **SECURITY_HEADERS,
            "cache-control": asset.cache_control,
            "etag": asset.etag,
            "vary": "accept-encoding",
        }
        if asset.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        body = asset.body
        if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body, headers["content-encoding"] = asset.gzipped, "gzip"
        return Response(body, headers=headers, media_type=asset.content_type)

    # The page names its assets by absolute paths (/console/assets/...), so it is the same
    # page with or without the trailing slash.
    return [
        Route(PREFIX, serve, methods=["GET"]),
        Route(f"{PREFIX}/{{path:path}}", serve, methods=["GET"]),
    ]
