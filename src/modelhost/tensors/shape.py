"""A tensor's shape as a client declares it, checked before anything is sized from it.

numpy holds at most 64 dimensions and counts elements in int64: a shape past either limit would
make numpy fail (or, multiplied in int64, wrap around to a small count that matches the data).
Every transport checks a declared shape here first, with Python's exact integers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from modelhost.errors import InvalidTensor

MAX_DIMENSIONS = 64
_INT64_MAX = 2**63 - 1


def checked_shape(name: str, shape: object) -> tuple[int, ...]:
    """``shape`` as a tuple of dimensions, or a 400 naming what is wrong with it."""
    if (
        type(shape) is list
        and len(shape) <= MAX_DIMENSIONS
        and all(type(dim) is int for dim in shape)
    ):
        # The common case (a JSON list of ints) without the Sequence ABC's isinstance, which
        # cost more than the rest of this check; anything else takes the long way below.
        dims = tuple(shape)
        if (
            min(dims, default=0) >= 0
            and max(dims, default=0) <= _INT64_MAX
            and element_count(dims) <= _INT64_MAX
        ):
            return dims
    if (
        not isinstance(shape, Sequence)
        or isinstance(shape, str | bytes)
        or not all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape)
    ):
        raise InvalidTensor(f"input {name!r}: 'shape' must be a list of non-negative integers")
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidTensor(
            f"input {name!r}: the shape has {len(shape)} dimensions; at most "
            f"{MAX_DIMENSIONS} are supported"
        )
    dims = tuple(shape)
    if any(dim > _INT64_MAX for dim in dims) or element_count(dims) > _INT64_MAX:
        raise InvalidTensor(f"input {name!r}: shape {list(dims)} has too many elements")
    return dims


def element_count(shape: Sequence[int]) -> int:
    """How many elements ``shape`` holds, exactly (no int64 wrap-around)."""
    return math.prod(shape)
