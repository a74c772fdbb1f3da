"""Tensors as raw bytes, shared by every transport: the REST binary tensor data extension's
encoding, and what V2 gRPC carries in ``raw_input_contents`` / ``raw_output_contents``.

Fixed-size datatypes are their little-endian values in row-major order. A BYTES tensor is each
element as a 4-byte little-endian length followed by that many bytes.
"""

from __future__ import annotations

import struct

import numpy as np

from modelhost.errors import InvalidTensor
from modelhost.tensors.datatypes import NUMPY_DTYPES, WIRE_DTYPES
from modelhost.tensors.shape import element_count

_LENGTH = struct.Struct("<I")


def from_bytes(
    name: str, datatype: str, shape: tuple[int, ...], raw: bytes | memoryview
) -> np.ndarray:
    """Decode one tensor's bytes, checking they hold exactly ``shape`` elements."""
    count = element_count(shape)
    if datatype == "BYTES":
        return _bytes_elements(name, shape, count, raw)
    wire = WIRE_DTYPES[datatype]
    expected = count * wire.itemsize
    if len(raw) != expected:
        raise InvalidTensor(
            f"input {name!r}: {datatype} with shape {list(shape)} needs {expected} bytes, "
            f"got {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=wire).reshape(shape)
    return array.astype(NUMPY_DTYPES[datatype], copy=False)


def to_bytes(datatype: str, array: np.ndarray) -> bytes:
    """Encode an array (already of the datatype's dtype) for the wire."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for item in array.reshape(-1):
            value = _as_bytes(item)
            parts.append(_LENGTH.pack(len(value)))
            parts.append(value)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=WIRE_DTYPES[datatype]).tobytes()


def _bytes_elements(
    name: str, shape: tuple[int, ...], count: int, raw: bytes | memoryview
) -> np.ndarray:
    view = memoryview(raw)
    items: list[bytes] = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidTensor(f"input {name!r}: BYTES data ends inside an element's length")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise InvalidTensor(
                f"input {name!r}: BYTES element {len(items)} says {length} bytes, "
                f"only {len(view) - offset} remain"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise InvalidTensor(
            f"input {name!r}: shape {list(shape)} needs {count} BYTES elements, got {len(items)}"
        )
    array = np.empty(count, dtype=object)
    array[:] = items
    return array.reshape(shape)


def _as_bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, np.bytes_):
        return bytes(item)
    return str(item).encode("utf-8")
