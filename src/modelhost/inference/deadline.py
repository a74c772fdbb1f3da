"""A request's own deadline, as the protocol's ``timeout`` parameter gives it."""

from __future__ import annotations

from typing import Any

from modelhost.errors import BadRequest


def parameter_timeout(parameters: dict[str, Any]) -> float | None:
    """Seconds from the ``timeout`` parameter (microseconds, as tritonclient sends it), if set."""
    value = parameters.get("timeout")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BadRequest("parameters.timeout must be a positive integer of microseconds")
    return value / 1_000_000
