"""Unique ids made cheaply: a random per-process prefix and a counter.

uuid4 reads the kernel's random source on every call, which shows in a profile at thousands of
requests a second; these ids only need to be unique (across replicas too), not unguessable.
"""

from __future__ import annotations

import itertools
import secrets

_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def new_id() -> str:
    """A 32-character hex id, unique across processes and restarts."""
    return f"{_PREFIX}{next(_COUNTER):016x}"
