"""Byte sizes as people write them ("8GiB", "500MB", "1_000_000") and as messages show them."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: str | int | float) -> int:
    """Parse a size such as ``8GiB``, ``512MB``, ``1.5G`` or ``1048576`` into bytes."""
    if isinstance(value, bool):
        raise ValueError("a byte size must be a number or a string like '8GiB'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a byte size cannot be negative")
        return int(value)
    match = _SIZE.match(value.replace("_", ""))
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a byte size: {value!r} (examples: 8GiB, 512MB, 1048576)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_bytes(count: float) -> str:
    """Show a byte count the way people read it: ``1.5 GiB``, ``12.0 MiB``, ``512 B``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
