"""Turns ``Authorization: Bearer <key>`` into a Principal without a database trip per request.

Key lookups are cached for ``cache_seconds`` (hits and misses alike), and the requests that
find a key's entry expired share one lookup, so the database sees one query per key per
interval however busy the key is. A key revoked through this replica is dropped
from its cache at once; other replicas notice within ``cache_seconds``.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from modelhost.auth.keys import secret_matches, split_key
from modelhost.auth.principal import Principal
from modelhost.db.timestamps import utcnow
from modelhost.db.users import ApiKey, User, UserStore
from modelhost.errors import Unauthorized, Unavailable

_MAX_CACHED = 100_000


@dataclass(slots=True)
class _Cached:
    found: tuple[ApiKey, User] | None
    until: float
    principal: Principal | None  # built once per lookup, not per request
    # The secret last seen to match the key's stored hash: the requests after it compare
    # with it in constant time instead of hashing again (a SHA-256 a request, ~3 % of one).
    verified: str | None = None


class Authenticator:
    """Finds the Principal behind a presented key, caching lookups; it forgets a key as soon as
    the user store says the key (or its user) changed through this replica."""

    def __init__(
        self,
        users: UserStore,
        *,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = users
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Future[tuple[ApiKey, User] | None]] = {}
        self._changes = 0  # forget() calls so far
        users.on_keys_changed(self.forget)

    async def authenticate(self, authorization: str | None) -> Principal:
        key_id, secret = _presented(authorization)
        cached = self._fresh(key_id)
        entry = cached if cached is not None else await self._lookup(key_id)
        return _admit(entry, secret)

    def authenticate_cached(self, authorization: str | None) -> Principal | None:
        """:meth:`authenticate` without a wait, when the key's lookup is cached (nearly every
        request: the hot path skips two coroutines); None: await :meth:`authenticate`."""
        key_id, secret = _presented(authorization)
        cached = self._fresh(key_id)
        return _admit(cached, secret) if cached is not None else None

    def forget(self, key_id: str | None = None) -> None:
        """Drop cached lookups (one key, or all) after a change made through this replica."""
        # A lookup under way may have read the key before the change: it is not kept either.
        self._changes += 1
        if key_id is None:
            self._cache.clear()
            self._inflight.clear()
        else:
            self._cache.pop(key_id, None)
            self._inflight.pop(key_id, None)

    def _landed(self, key_id: str, flight: asyncio.Future[tuple[ApiKey, User] | None]) -> None:
        if self._inflight.get(key_id) is flight:
            del self._inflight[key_id]

    def _fresh(self, key_id: str) -> _Cached | None:
        cached = self._cache.get(key_id)
        return cached if cached is not None and cached.until > self._clock() else None

    async def _lookup(self, key_id: str) -> _Cached:
        now = self._clock()
        cached = self._cache.get(key_id)
        changes = self._changes
        flight = self._inflight.get(key_id)
        if flight is None:
            flight = asyncio.ensure_future(self._users.key_with_owner(key_id))
            self._inflight[key_id] = flight
            flight.add_done_callback(lambda done: self._landed(key_id, done))
        try:
            # Shielded: a request that gives up does not cancel the lookup the others share.
            found = await asyncio.shield(flight)
        except (SQLAlchemyError, OSError) as exc:
            # The database is away: a key seen lately stays good (stale-if-error), so running
            # traffic keeps flowing; unknown keys cannot be checked.
            if cached is not None:
                return cached
            raise Unavailable(
                "API keys cannot be checked now: the database is unreachable "
                f"({type(exc).__name__})",
                retry_after=1.0,
            ) from None
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()  # a flood of random key ids must not grow memory without bound
        entry = _Cached(found, now + self._cache_seconds, _principal(found))
        if changes == self._changes:
            self._cache[key_id] = entry
        return entry


def _presented(authorization: str | None) -> tuple[str, str]:
    """(key id, secret) of an ``Authorization: Bearer <key>`` header."""
    if not authorization:
        raise Unauthorized("an API key is required: Authorization: Bearer <key>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use Authorization: Bearer <key>")
    return split_key(token.strip())


def _admit(entry: _Cached, secret: str) -> Principal:
    """The principal of a looked-up key, if ``secret`` is its secret and the key may be used."""
    if entry.found is None:
        raise Unauthorized("the API key is not valid")
    verified = entry.verified
    # compare_digest takes ASCII text only; a presented secret that is not ASCII is no match.
    seen = verified is not None and secret.isascii() and hmac.compare_digest(secret, verified)
    if not seen:
        if not secret_matches(secret, entry.found[0].secret_hash):
            raise Unauthorized("the API key is not valid")
        entry.verified = secret
    key, user = entry.found
    if key.revoked_at is not None:
        raise Unauthorized("the API key has been revoked")
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise Unauthorized("the API key has expired")
    if user.disabled:
        raise Unauthorized("the user of this API key is disabled")
    assert entry.principal is not None
    return entry.principal


def _principal(found: tuple[ApiKey, User] | None) -> Principal | None:
    if found is None:
        return None
    key, user = found
    return Principal(
        user_id=user.id,
        name=user.name,
        role=user.role,
        key_id=key.key_id,
        allowed_models=frozenset(key.allowed_models) if key.allowed_models else None,
        requests_per_minute=key.requests_per_minute,
        max_in_flight=key.max_in_flight,
    )
