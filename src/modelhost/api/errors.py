"""Every error leaves the server as JSON ``{"error": ..., "code": ...}`` with its status."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from modelhost.errors import ModelhostError

log = logging.getLogger(__name__)

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    status: int, message: str, code: str, retry_after: float | None = None
) -> Response:
    headers = {"retry-after": str(max(1, math.ceil(retry_after)))} if retry_after else None
    return Response(
        orjson.dumps({"error": message, "code": code}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def modelhost_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelhostError)
    if exc.status >= 500 and exc.status != 503:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return error_response(exc.status, exc.message, exc.code, exc.retry_after)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if exc.status_code != 404 else f"no route {request.url.path}"
    response = error_response(exc.status_code, message, code)
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["allow"] = ", ".join(sorted(_allowed_methods(request)))
    return response


def _allowed_methods(request: Request) -> set[str]:
    """Every method some route of this path takes (Starlette's own Allow names only the first
    route that matched the path, and GET /users and POST /users are two routes). Each method is
    tried against the routes, so routers nested in the app are asked too."""
    routes = getattr(request.app, "routes", ())
    return {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }


async def unexpected_error(request: Request, exc: Exception) -> Response:
    # Our own bug: log the traceback, tell the client only that it happened.
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}", "internal")


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
    )
    return error_response(400, problems, "bad_request")


async def response_for(request: Request, exc: Exception) -> Response:
    """The answer to ``exc``: what the handler :data:`EXCEPTION_HANDLERS` names for its nearest
    class gives (``Exception``'s, a 500, for anything unforeseen)."""
    for cls in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(cls)
        if handler is not None:
            return await handler(request, exc)
    return await unexpected_error(request, exc)


EXCEPTION_HANDLERS: dict[
    int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]
] = {
    ModelhostError: modelhost_error,
    RequestValidationError: validation_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
