"""Who is calling: the user behind an API key, with what that key allows."""

from __future__ import annotations

from dataclasses import dataclass

from modelhost.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int | None
    name: str
    role: str
    key_id: str | None = None
    allowed_models: frozenset[str] | None = None  # None: every model
    requests_per_minute: int | None = None
    max_in_flight: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def quota_key(self) -> str:
        """What quotas count against: the key (each key has its own limits)."""
        return self.key_id or self.name

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this needs the admin role")

    def may_use(self, name: str) -> bool:
        return self.allowed_models is None or name in self.allowed_models

    def require_model(self, name: str) -> None:
        """Refuse (403) a model this key may not use, whether or not it exists: a limited key
        learns nothing about other models, not even their names."""
        if not self.may_use(name):
            raise Forbidden(f"this API key may not use model {name!r}")


# With MODELHOST_AUTH=disabled every caller is this one (local experiments only).
ANONYMOUS_ADMIN = Principal(user_id=None, name="anonymous", role="admin")

# Whoever no principal was found for: access fails closed, so this one may do nothing at all.
NOBODY = Principal(user_id=None, name="nobody", role="none", allowed_models=frozenset())
