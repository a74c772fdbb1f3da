"""Request and response bodies of the management API (``/api/v1``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from modelhost.api.openapi import LARGEST_ID

_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def _rfc3339(value: object) -> object:
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.match(value)):
        return value
    raise ValueError("must be a date-time with its offset, like 2026-01-31T12:00:00Z (RFC 3339)")


def _json_integer(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer, not a boolean or a string")
    return value


# An integer as JSON Schema means it (the OpenAPI document's type: integer): a number with no
# fraction, 3 or 3.0. Pydantic's lax mode would also read true as 1 and "3" as 3; a client that
# sends those has a bug to hear about. The bounds come before the validator so that they land on
# the integer and the document says minimum and maximum (after it, pydantic writes "ge", "le").
VersionNumber = Annotated[int, Field(ge=1, le=LARGEST_ID), BeforeValidator(_json_integer)]
Limit = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(_json_integer)]


# A point in time as the OpenAPI document says (format date-time): not a number of seconds,
# not a date alone, not without its offset.
DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionPublic(BaseModel):
    version: int
    runtime: str
    state: str  # the cache's: UNAVAILABLE, LOADING, READY, UNLOADING
    reason: str
    size_bytes: int
    files: dict[str, dict[str, Any]]
    created_at: datetime
    pinned: bool
    memory_bytes: int | None = Field(
        default=None, description="Footprint measured at its last load in this process."
    )
    last_used_at: datetime | None = Field(
        default=None, description="The last request that used it in this process."
    )


class ModelPublic(BaseModel):
    name: str
    versions: list[VersionPublic]
    aliases: dict[str, int]


class VersionCreate(_Strict):
    version: VersionNumber | None = Field(
        default=None, description="A version already in the store; default: the newest."
    )


class AliasUpdate(_Strict):
    version: VersionNumber


class UserCreate(_Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]*$")
    role: Literal["admin", "user"] = "user"


class UserPublic(BaseModel):
    id: int
    name: str
    role: str
    disabled: bool
    created_at: datetime


class UserUpdate(_Strict):
    disabled: StrictBool


class KeyCreate(_Strict):
    name: str | None = Field(default=None, max_length=128)
    expires_at: DateTime | None = None
    allowed_models: list[str] | None = Field(default=None, min_length=1)
    requests_per_minute: Limit | None = None
    max_in_flight: Limit | None = None


class KeyPublic(BaseModel):
    key_id: str
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    allowed_models: list[str] | None
    requests_per_minute: int | None
    max_in_flight: int | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The whole key. It is shown this once and never again.")


class MePublic(BaseModel):
    name: str
    role: str
    user_id: int | None
    key_id: str | None
    allowed_models: list[str] | None = Field(description="None: every model.")


class UsagePublic(BaseModel):
    id: int
    user_id: int | None
    key_id: str | None
    model: str
    version: int | None
    status: int
    latency_ms: float
    batch_size: int
    bytes_in: int
    bytes_out: int
    created_at: datetime


class UsagePage(BaseModel):
    records: list[UsagePublic]
    next_before_id: int | None = Field(description="Pass as before_id for the next page.")


class ModelUsage(BaseModel):
    model: str
    requests: int
    errors: int
    mean_latency_ms: float
    bytes_in: int
    bytes_out: int
