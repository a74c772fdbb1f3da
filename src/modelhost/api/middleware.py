"""Request context as plain ASGI middleware: the request id, the in-flight count, one log line
per request, refusing new requests while the server drains for shutdown, and a JSON 500 for an
error nothing inside answered (the outermost layer: see :class:`modelhost.app.ModelhostApp`)."""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelhost.api.errors import error_response
from modelhost.lifecycle import Lifecycle
from modelhost.observability import context
from modelhost.observability.ids import new_id

log = logging.getLogger("modelhost.access")
errors = logging.getLogger(__name__)

# Probes and scrapes: not counted, not logged, answered even while draining.
QUIET_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        lifecycle = self.lifecycle
        request_id = _request_id(scope)
        if lifecycle.draining:
            response = error_response(503, "the server is shutting down", "shutting_down", 1.0)
            response.headers["connection"] = "close"
            response.headers["x-request-id"] = request_id
            await response(scope, receive, send)
            return
        fields = context.begin(request_id)
        status = 0  # no answer yet
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        started = time.perf_counter()
        lifecycle.request_started()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status:  # the answer has begun: uvicorn ends the connection
                raise
            # Our own bug: log the traceback, tell the client only that it happened.
            errors.exception("%s %s failed", scope["method"], scope["path"])
            response = error_response(500, f"internal error: {type(exc).__name__}", "internal")
            await response(scope, receive, send_with_id)
        finally:
            status = status or 500
            lifecycle.request_finished()
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                        **fields,
                    },
                )


def _request_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            given: str = value.decode("latin-1")
            if _REQUEST_ID.match(given):
                return given
            break
    return new_id()
