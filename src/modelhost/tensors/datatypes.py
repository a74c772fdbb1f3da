"""The Open Inference Protocol's tensor datatypes and their numpy counterparts."""

from __future__ import annotations

import numpy as np

# BYTES tensors hold variable-length byte strings; numpy keeps them as an object array of bytes.
NUMPY_DTYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

# Little-endian on the wire, as the binary tensor extension specifies.
WIRE_DTYPES: dict[str, np.dtype[np.generic]] = {
    name: dtype.newbyteorder("<") for name, dtype in NUMPY_DTYPES.items() if name != "BYTES"
}

DATATYPES = frozenset(NUMPY_DTYPES)
