"""Per-request fields every log line of that request carries (request id, model, user)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_fields: ContextVar[dict[str, Any] | None] = ContextVar("modelhost_request_fields", default=None)


def begin(request_id: str) -> dict[str, Any]:
    """Start a request's fields (the middleware does this); returns them for reading later."""
    fields: dict[str, Any] = {"request_id": request_id}
    _fields.set(fields)
    return fields


def annotate(**values: Any) -> None:
    """Add fields to the current request's log lines (no-op outside a request)."""
    fields = _fields.get()
    if fields is not None:
        fields.update(values)


def current() -> dict[str, Any]:
    return _fields.get() or {}
