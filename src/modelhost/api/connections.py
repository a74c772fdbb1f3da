"""Connections no client can hoard: a cap, and timeouts on headers, bodies and idle time.

uvicorn alone enforces none of this. Its ``timeout_keep_alive`` is armed only after a response,
so a connection that never sends a request (or sends its headers a byte a second) stays open
forever; its ``limit_concurrency`` answers 503 to *requests* once connections are many, which
turns away everyone new while the idle connections stay. So the HTTP protocol is uvicorn's
httptools one with a :class:`ConnectionGuard` beside it:

- **A cap** on open connections (:mod:`modelhost.api.descriptors` keeps it below the process's
  descriptor limit). When a new connection would pass it, the guard closes the oldest
  *reusable* one, as nginx does: first those still waiting for their first request (a client
  that connects and says nothing, or is still trickling its headers, has nothing in progress),
  then those idle between keep-alive requests. A connection with a request in flight is never
  closed for room; only when every one has one is the newcomer refused (closed).
- **A header timeout**: a request's headers must all arrive within ``header_timeout`` of its
  first byte (of the connection, for the first request): slowloris gets cut off.
- **A body timeout**: a body that stops arriving for ``body_timeout`` (while the server is
  reading it) ends the connection; the route sees the client gone (499).
- **Idle keep-alive** connections close after uvicorn's ``timeout_keep_alive``.

Each response's head leaves with its body in one write (:mod:`modelhost.api.head_holding`).

The common case costs no timer: headers that arrive in one read never arm one. And a connection
that has sent nothing yet is only the guard's entry and its header timer: uvicorn's protocol is
set up on the first byte.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from modelhost.api.head_holding import HeadHoldingTransport

log = logging.getLogger(__name__)

_WARN_EVERY_SECONDS = 10.0


@dataclass
class ConnectionStats:
    """What the guard did since the server started."""

    evicted: int = 0  # closed for room: the oldest reusable connections
    refused: int = 0  # closed on arrival: every open connection had a request in flight
    header_timeouts: int = 0
    body_timeouts: int = 0


class ConnectionGuard:
    """Counts open connections and picks which to close for room (oldest reusable first)."""

    def __init__(self, cap: int, header_timeout: float, body_timeout: float) -> None:
        self.cap = cap
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.stats = ConnectionStats()
        self._open = 0
        # Reusable connections, oldest first: never had a request, then idle between requests.
        self._waiting: OrderedDict[GuardedProtocol, None] = OrderedDict()
        self._idle: OrderedDict[GuardedProtocol, None] = OrderedDict()
        self._warned_at = -_WARN_EVERY_SECONDS

    @property
    def open(self) -> int:
        return self._open

    def admit(self, connection: GuardedProtocol) -> bool:
        """Make room for ``connection`` if the cap is reached; False: refuse it."""
        if self._open >= self.cap and not self._evict_one():
            self.stats.refused += 1
            self._warn("every one has a request in flight: refusing new connections")
            return False
        self._open += 1
        self._waiting[connection] = None
        return True

    def busy(self, connection: GuardedProtocol) -> None:
        """A request on ``connection`` has its headers: it is not closed for room now."""
        self._waiting.pop(connection, None)
        self._idle.pop(connection, None)

    def idle(self, connection: GuardedProtocol) -> None:
        """``connection`` answered its request and waits for another (keep-alive)."""
        self._idle[connection] = None

    def closed(self, connection: GuardedProtocol) -> None:
        self._waiting.pop(connection, None)
        self._idle.pop(connection, None)
        self._open -= 1

    def _evict_one(self) -> bool:
        for reusable in (self._waiting, self._idle):
            if reusable:
                oldest, _ = reusable.popitem(last=False)
                self.stats.evicted += 1
                self._warn("closing the oldest idle connections to admit new ones")
                oldest.evict()
                return True
        return False

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "%d connections open, the cap (MODELHOST_MAX_CONNECTIONS, or the descriptor "
                "limit): %s (%s)",
                self._open,
                what,
                self.stats,
            )


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, admitted, timed and closed for room by a guard.

    Built through :func:`guarded_protocol`, which binds the guard.
    """

    guard: ConnectionGuard

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # uvicorn's own set-up (its parser, loggers, the socket's two addresses) waits for the
        # connection's first byte: a flood of connections that never send one costs the event
        # loop only the guard's bookkeeping, and every connection queued behind them (a health
        # probe's) is reached sooner.
        self._uvicorn_args = (config, server_state, app_state, _loop)
        self._started = False
        self.loop = _loop or asyncio.get_event_loop()
        self._admitted = False
        self._reading_headers = True  # until the first request's headers are in
        self._timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0  # loop time body data last arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        if not self.guard.admit(self):
            transport.abort()
            return
        self._admitted = True
        # The first request's headers are due within the header timeout of connecting.
        self._timer = self.loop.call_later(self.guard.header_timeout, self._headers_late)

    def _start(self) -> None:
        """Become uvicorn's protocol, on the connection's first byte."""
        self._started = True
        transport = self.transport  # uvicorn's __init__ resets it
        super().__init__(*self._uvicorn_args)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._admitted:
            self._admitted = False
            self.guard.closed(self)
        if self._started:
            super().connection_lost(exc)

    def pause_writing(self) -> None:
        if self._started:  # nothing is written before the first request
            super().pause_writing()

    def resume_writing(self) -> None:
        if self._started:
            super().resume_writing()

    def evict(self) -> None:
        """Closed for room (the guard already stopped counting it)."""
        self._cancel_timer()
        self._admitted = False
        self.guard.closed(self)
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._started:
            self._start()
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._reading_headers:  # begun, not finished: due within the header timeout
            if self._timer is None:
                self._timer = self.loop.call_later(self.guard.header_timeout, self._headers_late)
        elif self._reading_body():  # the body must keep coming
            self._body_seen = self.loop.time()
            if self._timer is None:
                self._timer = self.loop.call_later(self.guard.body_timeout, self._body_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._cancel_timer()
        self.guard.busy(self)
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not previous:  # a request's new cycle (not an upgrade); its task waits
            # The cycle calls only write, close and is_closing on its transport.
            cycle.transport = HeadHoldingTransport(self.transport, cycle)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer exactly when the connection goes idle.
        if self.timeout_keep_alive_task is not None and self._admitted:
            self.guard.idle(self)

    def _reading_body(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.more_body and not cycle.response_complete

    def _headers_late(self) -> None:
        self._timer = None
        if self._reading_headers and not self.transport.is_closing():
            self.guard.stats.header_timeouts += 1
            self.transport.abort()

    def _body_late(self) -> None:
        self._timer = None
        if not self._reading_body() or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the server is not reading: not the client's fault
            self._body_seen = now
        quiet = now - self._body_seen
        if quiet < self.guard.body_timeout:
            self._timer = self.loop.call_later(self.guard.body_timeout - quiet, self._body_late)
            return
        self.guard.stats.body_timeouts += 1
        self.transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``), bound to ``guard``."""
    return type("GuardedHttpToolsProtocol", (GuardedProtocol,), {"guard": guard})
