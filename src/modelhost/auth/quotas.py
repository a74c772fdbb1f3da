"""Per-key quotas: requests per minute and requests in flight, answered 429 with Retry-After.

Counters live in this process, or in Redis (``MODELHOST_REDIS_URL``) so that every replica
counts against the same limits. A key's own limits win; the server's defaults apply otherwise.
If Redis stops answering, requests are let through (and logged): an outage of the counter store
must not become an outage of the service.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

from modelhost.auth.principal import Principal
from modelhost.errors import TooManyRequests

log = logging.getLogger(__name__)


class Quotas(Protocol):
    async def acquire(self, principal: Principal) -> None:
        """Count a request in; raise TooManyRequests if it is over a limit."""

    async def release(self, principal: Principal) -> None:
        """Count a request out (in flight only); never raises."""


class Limits:
    """Which limits apply to a principal."""

    def __init__(self, requests_per_minute: int | None, max_in_flight: int | None) -> None:
        self.requests_per_minute = requests_per_minute
        self.max_in_flight = max_in_flight

    def of(self, principal: Principal) -> tuple[int | None, int | None]:
        return (
            principal.requests_per_minute or self.requests_per_minute,
            principal.max_in_flight or self.max_in_flight,
        )


def _too_many_in_flight(count: int, limit: int) -> TooManyRequests:
    return TooManyRequests(
        f"{count} requests of this key are already in flight; the limit is {limit}",
        retry_after=1.0,
    )


def _too_many_per_minute(limit: int, now: float) -> TooManyRequests:
    return TooManyRequests(
        f"this key may make {limit} requests a minute; try again in the next minute",
        retry_after=max(1.0, math.ceil(60 - now % 60)),
    )


class LocalQuotas:
    """Counters in this process (one replica, or limits meant per replica)."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.time) -> None:
        self._limits = limits
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._minute: dict[str, tuple[int, int]] = {}  # key -> (minute, count)

    async def acquire(self, principal: Principal) -> None:
        per_minute, in_flight = self._limits.of(principal)
        key = principal.quota_key
        if in_flight is not None and self._in_flight.get(key, 0) >= in_flight:
            raise _too_many_in_flight(self._in_flight[key], in_flight)
        if per_minute is not None:
            now = self._clock()
            minute = int(now // 60)
            window, count = self._minute.get(key, (minute, 0))
            count = count + 1 if window == minute else 1
            if count > per_minute:
                raise _too_many_per_minute(per_minute, now)
            self._minute[key] = (minute, count)
        if in_flight is not None:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1

    async def release(self, principal: Principal) -> None:
        key = principal.quota_key
        count = self._in_flight.get(key)
        if count is None:
            return
        if count <= 1:
            del self._in_flight[key]
        else:
            self._in_flight[key] = count - 1

    def in_flight(self, principal: Principal) -> int:
        return self._in_flight.get(principal.quota_key, 0)


class RedisQuotas:
    """Counters in Redis, shared by every replica."""

    # In-flight counters expire if a replica dies holding some: they must not stick forever.
    _IN_FLIGHT_TTL = 600

    def __init__(self, url: str, limits: Limits, clock: Callable[[], float] = time.time) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._limits = limits
        self._clock = clock

    async def acquire(self, principal: Principal) -> None:
        per_minute, in_flight = self._limits.of(principal)
        if per_minute is None and in_flight is None:
            return
        key = principal.quota_key
        now = self._clock()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                if per_minute is not None:
                    window = f"modelhost:rpm:{key}:{int(now // 60)}"
                    pipe.incr(window)
                    pipe.expire(window, 120)
                if in_flight is not None:
                    pipe.incr(f"modelhost:inflight:{key}")
                    pipe.expire(f"modelhost:inflight:{key}", self._IN_FLIGHT_TTL)
                results = await pipe.execute()
        except Exception as exc:  # redis' errors and OSError alike: fail open
            log.warning("quota counters unavailable, request let through: %s", exc)
            return
        position = 0
        if per_minute is not None:
            minute_count = int(results[0])
            position = 2
            if minute_count > per_minute:
                if in_flight is not None:
                    await self._decrement(key)
                raise _too_many_per_minute(per_minute, now)
        if in_flight is not None:
            count = int(results[position])
            if count > in_flight:
                await self._decrement(key)
                raise _too_many_in_flight(count - 1, in_flight)

    async def release(self, principal: Principal) -> None:
        if self._limits.of(principal)[1] is not None:
            await self._decrement(principal.quota_key)

    async def _decrement(self, key: str) -> None:
        try:
            await self._redis.decr(f"modelhost:inflight:{key}")
        except Exception as exc:
            log.warning("could not count a request out of its quota: %s", exc)

    async def close(self) -> None:
        await self._redis.aclose()
