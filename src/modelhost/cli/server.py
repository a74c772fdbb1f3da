"""Running the server under uvicorn, with a graceful shutdown on SIGTERM.

uvicorn runs the sockets, signals and lifespan; each connection is modelhost's own
(:mod:`modelhost.api.http_connection`).

On the first SIGTERM (or Ctrl-C) readiness turns false and new requests get 503 at once; the
requests in flight get up to ``shutdown_grace_seconds`` to finish; then uvicorn stops, and the
app's shutdown flushes the usage writer and unloads the models. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

import uvicorn

from modelhost.api.connections import ConnectionGuard
from modelhost.api.descriptors import connection_cap, raise_descriptor_limit
from modelhost.api.http_connection import http_protocol
from modelhost.app import create_app
from modelhost.lifecycle import Lifecycle
from modelhost.observability.logging import configure_logging
from modelhost.settings import Settings

log = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, grace: float) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None or self._draining is not None:
            super().handle_exit(sig, frame)  # not started yet, or a second signal: stop now
            return
        self._draining = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        log.info("shutting down: refusing new requests, %d in flight", self._lifecycle.in_flight)
        left = await self._lifecycle.drain(self._grace)
        if left:
            log.warning("%d requests still running after the %.0fs grace period", left, self._grace)
        self.should_exit = True


def run_server(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    descriptors = raise_descriptor_limit()
    guard = ConnectionGuard(
        cap=connection_cap(descriptors, settings.max_connections),
        header_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
    )
    log.info("holding at most %d connections (descriptor limit %d)", guard.cap, descriptors)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the logging configured above
        access_log=False,  # one line per request comes from our middleware instead
        # The client address is never used; uvicorn's X-Forwarded-For check costs ~10% of a
        # small request's time.
        proxy_headers=False,
        server_header=False,  # says nothing a client needs, and costs a header on every answer
        loop="uvloop",
        http=http_protocol(guard),  # modelhost's own HTTP/1.1 connection
        timeout_keep_alive=settings.keep_alive_seconds,
        # Connections wait here only while the loop is busy; the guard admits them fast.
        backlog=4096,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
    )
    GracefulServer(config, app.state.lifecycle, settings.shutdown_grace_seconds).run()
