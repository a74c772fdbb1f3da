"""Connections no client can hoard: a cap, and timeouts on headers, bodies and idle time.

uvicorn alone enforces none of this. Its ``timeout_keep_alive`` is armed only after a response,
so a connection that never sends a request (or sends its headers a byte a second) stays open
forever; its ``limit_concurrency`` answers 503 to *requests* once connections are many, which
turns away everyone new while the idle connections stay. So every connection
(:mod:`modelhost.api.http_connection`) answers to a :class:`ConnectionGuard`:

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
- **Idle keep-alive** connections close after ``keep_alive_seconds``.

The connection enforces the timeouts with one lazily armed timer; the guard holds the cap and the
order in which connections are closed for room.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

_WARN_EVERY_SECONDS = 10.0


class Connection(Protocol):
    def evict(self) -> None:
        """Close at once: the guard needs the room (it has stopped counting this one)."""


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
        self._waiting: OrderedDict[Connection, None] = OrderedDict()
        self._idle: OrderedDict[Connection, None] = OrderedDict()
        self._warned_at = -_WARN_EVERY_SECONDS

    @property
    def open(self) -> int:
        return self._open

    def admit(self, connection: Connection) -> bool:
        """Make room for ``connection`` if the cap is reached; False: refuse it."""
        if self._open >= self.cap and not self._evict_one():
            self.stats.refused += 1
            self._warn("every one has a request in flight: refusing new connections")
            return False
        self._open += 1
        self._waiting[connection] = None
        return True

    def busy(self, connection: Connection) -> None:
        """A request on ``connection`` has its headers: it is not closed for room now."""
        self._waiting.pop(connection, None)
        self._idle.pop(connection, None)

    def idle(self, connection: Connection) -> None:
        """``connection`` answered its request and waits for another (keep-alive)."""
        self._idle[connection] = None

    def closed(self, connection: Connection) -> None:
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
