"""Per-user limits on requests in flight, checked before a request takes any resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from modelhost.errors import TooManyRequests


class InFlightLimiter:
    """At most ``limit`` requests per principal at once; the next is answered 429 at once.

    ``limit=None`` turns the check off. Counts live in this process; the persistence issue's
    quotas share them across replicas.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._in_flight: dict[str, int] = {}

    @contextmanager
    def admit(self, principal: str) -> Iterator[None]:
        if self.limit is None:
            yield
            return
        count = self._in_flight.get(principal, 0)
        if count >= self.limit:
            raise TooManyRequests(
                f"{count} requests of yours are already in flight, the limit is {self.limit}",
                retry_after=1.0,
            )
        self._in_flight[principal] = count + 1
        try:
            yield
        finally:
            remaining = self._in_flight[principal] - 1
            if remaining:
                self._in_flight[principal] = remaining
            else:
                del self._in_flight[principal]

    def in_flight(self, principal: str) -> int:
        return self._in_flight.get(principal, 0)
