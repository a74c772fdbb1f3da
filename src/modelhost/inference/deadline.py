"""A request's own deadline, as the protocol's ``timeout`` parameter gives it."""

from __future__ import annotations

import time
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


# Now, on the clock every request deadline is on (seconds): not the event loop's, since
# uvloop's loop.time() counts whole milliseconds, so a deadline a microsecond away could still
# look ahead of "now" after the model had run. An alias, not a wrapper: it is read several
# times a request.
deadline_clock = time.monotonic
