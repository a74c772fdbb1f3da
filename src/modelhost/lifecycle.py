"""A server's readiness, its draining for shutdown, and the count of requests in flight: what
the readiness probe, the request middleware, the metrics and a graceful shutdown share."""

from __future__ import annotations

import asyncio
import contextlib


class Lifecycle:
    """Mutated on the event loop only; every transport counts its requests here."""

    def __init__(self) -> None:
        self.ready = False
        self.draining = False
        self.in_flight = 0  # exported at scrape time: no metric lock on the request path
        self._idle: asyncio.Event | None = None

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def drain(self, grace: float) -> int:
        """Refuse new requests (503, readiness false) and wait up to ``grace`` seconds for the
        ones in flight; returns how many were still running when the wait ended."""
        self.draining = True
        self.ready = False
        self._idle = asyncio.Event()
        if self.in_flight == 0:
            self._idle.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        return self.in_flight
