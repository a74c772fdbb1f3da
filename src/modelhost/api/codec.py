"""The Open Inference Protocol's REST body, JSON and binary, to and from transport-neutral types.

A request body is JSON, or — with the binary tensor data extension — a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw tensors of every input whose
``parameters.binary_data_size`` is set, in order. Responses mirror that for outputs asked for
with ``parameters.binary_data`` (or ``binary_data_output`` on the whole request).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson

from modelhost.api.requests import parse_json_object
from modelhost.errors import BadRequest, InvalidTensor
from modelhost.inference.types import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelhost.tensors.datatypes import DATATYPES, NUMPY_DTYPES
from modelhost.tensors.raw import from_bytes, to_bytes
from modelhost.tensors.shape import checked_shape, element_count

HEADER_LENGTH = "inference-header-content-length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
_JSON_CONTENT = (b"content-type", JSON_TYPE.encode())
_BINARY_CONTENT = (b"content-type", BINARY_TYPE.encode())

# Which JSON-inferred numpy kinds each datatype accepts: no silent float→int truncation.
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
# Up to this many elements, a tensor's values are checked as Python numbers (see _all_finite).
_SMALL_TENSOR = 64
_KIND_WORDS = {"b": "true/false", "i": "integers", "u": "integers", "f": "numbers"}


# Called with each input's name, datatype and declared shape before its data is decoded, so a
# tensor the model would refuse (a batch over max_batch_size, a wrong shape) costs no decoding.
DeclaredCheck = Callable[[str, str, tuple[int, ...]], None]


def decode_request(
    body: bytes | bytearray,
    header_length: int | None,
    model_name: str,
    model_version: str | None,
    check: DeclaredCheck | None = None,
) -> InferenceRequest:
    """Parse a V2 infer body; every problem is a 400 naming the field at fault."""
    if header_length is None:
        header, binary = body, memoryview(b"")
    else:
        if header_length < 0 or header_length > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(body)} bytes"
            )
        header, binary = body[:header_length], memoryview(body)[header_length:]
    doc = parse_json_object(header)

    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    parameters = _mapping(doc.get("parameters"), "parameters")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")

    inputs: list[Tensor] = []
    offset = 0
    for position, raw in enumerate(raw_inputs):
        tensor, used = _decode_input(raw, position, binary[offset:], check)
        offset += used
        inputs.append(tensor)
    if offset != len(binary):
        raise InvalidTensor(
            f"{len(binary) - offset} bytes of binary data follow the tensors the header describes"
        )
    names = [tensor.name for tensor in inputs]
    if len(set(names)) != len(names):
        raise InvalidTensor(f"input names repeat: {names}")

    return InferenceRequest(
        model_name=model_name,
        model_version=model_version,
        inputs=inputs,
        outputs=_decode_outputs(doc.get("outputs")),
        id=request_id,
        parameters=parameters,
    )


def _decode_input(
    raw: Any, position: int, binary: memoryview, check: DeclaredCheck | None
) -> tuple[Tensor, int]:
    if not isinstance(raw, dict):
        raise BadRequest(f"inputs[{position}] must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"inputs[{position}] needs a 'name'")
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise InvalidTensor(
            f"input {name!r}: unknown datatype {datatype!r}; one of {sorted(DATATYPES)}"
        )
    dims = checked_shape(name, raw.get("shape"))
    if check is not None:
        check(name, datatype, dims)
    size = _mapping(raw.get("parameters"), f"input {name!r} parameters").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidTensor(f"input {name!r}: binary_data_size must be a non-negative integer")
        if size > len(binary):
            raise InvalidTensor(
                f"input {name!r}: binary_data_size is {size} but only {len(binary)} bytes of "
                "binary data remain"
            )
        return Tensor(name, datatype, from_bytes(name, datatype, dims, binary[:size])), size
    if "data" not in raw:
        raise InvalidTensor(f"input {name!r} has neither 'data' nor a binary_data_size")
    return Tensor(name, datatype, _from_json(name, datatype, dims, raw["data"])), 0


def _from_json(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    count = element_count(shape)
    if not isinstance(data, list):
        raise InvalidTensor(f"input {name!r}: 'data' must be a list")
    if datatype == "BYTES":
        items = _flatten(name, data, len(shape))
        if not all(isinstance(item, str) for item in items):
            raise InvalidTensor(f"input {name!r}: BYTES data in JSON must be strings")
        if len(items) != count:
            raise InvalidTensor(
                f"input {name!r}: shape {list(shape)} needs {count} elements, got {len(items)}"
            )
        array = np.empty(count, dtype=object)
        array[:] = [item.encode("utf-8") for item in items]
        return array.reshape(shape)
    target = NUMPY_DTYPES[datatype]
    try:
        array = np.array(data)
    except (ValueError, TypeError):
        raise InvalidTensor(f"input {name!r}: 'data' is not a regular array of numbers") from None
    if array.size != count:
        raise InvalidTensor(
            f"input {name!r}: shape {list(shape)} needs {count} elements, got {array.size}"
        )
    if count == 0:
        return np.empty(shape, dtype=target)
    if target.kind in "iu" and array.dtype.kind in "fO":
        # Integers past int64's range (UINT64's upper half) make numpy infer float64, which
        # rounds them, or object: keep them as exact Python ints for the range check instead.
        items = _flatten(name, data, len(shape))
        if all(type(item) is int for item in items):
            array = np.array(items, dtype=object)
    if array.dtype.kind not in _ACCEPTED_KINDS[target.kind] and not (
        array.dtype.kind == "O" and target.kind in "iu"
    ):
        raise InvalidTensor(f"input {name!r}: {datatype} data must be {_KIND_WORDS[target.kind]}")
    if target.kind in "iu":
        info = np.iinfo(target.name)
        if array.min() < info.min or array.max() > info.max:
            raise InvalidTensor(f"input {name!r}: a value is out of range for {datatype}")
    converted = array.astype(target, copy=False).reshape(shape)
    if target.kind == "f" and target.itemsize < array.dtype.itemsize:
        # JSON numbers are read as float64; one past FP32's (or FP16's) range would become
        # infinity, silently. JSON itself has no infinity, so any here is an overflow.
        if not _all_finite(converted):
            raise InvalidTensor(f"input {name!r}: a value is out of range for {datatype}")
    return converted


def _all_finite(array: np.ndarray) -> bool:
    if array.size <= _SMALL_TENSOR:
        # A few values: Python floats check faster than numpy's two calls and their set-up.
        return all(map(math.isfinite, array.ravel().tolist()))
    return bool(np.isfinite(array).all())


def _flatten(name: str, data: list[Any], depth: int) -> list[Any]:
    """The scalars of nested lists, in order, nested no deeper than the tensor's ``depth``
    dimensions (without recursion: a client may nest a thousand levels deep)."""
    items: list[Any] = []
    stack: list[tuple[Iterator[Any], int]] = [(iter(data), 1)]
    while stack:
        level_items, level = stack[-1]
        for item in level_items:
            if isinstance(item, list):
                if level >= max(depth, 1):
                    raise InvalidTensor(
                        f"input {name!r}: 'data' is nested deeper than its {depth} dimensions"
                    )
                stack.append((iter(item), level + 1))
                break
            items.append(item)
        else:
            stack.pop()
    return items


def _decode_outputs(raw: Any) -> list[RequestedOutput]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("'outputs' must be a list")
    requested: list[RequestedOutput] = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest(f"outputs[{position}] must be an object with a 'name'")
        binary = _mapping(item.get("parameters"), f"outputs[{position}].parameters").get(
            "binary_data"
        )
        if binary is not None and not isinstance(binary, bool):
            raise BadRequest(f"outputs[{position}]: binary_data must be true or false")
        requested.append(RequestedOutput(item["name"], binary))
    return requested


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object")
    return value


def encode_response(
    response: InferenceResponse, requested: list[RequestedOutput], binary_default: bool
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The response body and its content headers, ready for the wire."""
    binary_of = {output.name: output.binary for output in requested}
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in response.outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.data.shape),
        }
        wants_binary = binary_of.get(tensor.name)
        if wants_binary if wants_binary is not None else binary_default:
            raw = to_bytes(tensor.datatype, tensor.data)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = _to_json(tensor)
        outputs.append(entry)
    doc: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id is not None:
        doc["id"] = response.id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, [_JSON_CONTENT]
    return header + b"".join(blobs), [
        _BINARY_CONTENT,
        (HEADER_LENGTH.encode(), str(len(header)).encode()),
    ]


def _to_json(tensor: Tensor) -> Any:
    flat = tensor.data.reshape(-1)
    if tensor.datatype != "BYTES":
        return np.ascontiguousarray(flat)  # orjson writes numeric arrays natively
    try:
        return [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in flat]
    except UnicodeDecodeError:
        raise BadRequest(
            f"output {tensor.name!r} holds bytes that are not UTF-8 text; ask for it with "
            "binary_data: true"
        ) from None
