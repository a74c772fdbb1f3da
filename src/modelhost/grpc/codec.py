"""``ModelInferRequest`` / ``ModelInferResponse`` to and from the transport-neutral types.

Input tensors come either all as ``raw_input_contents`` (one entry per input, in order, in the
encoding of :mod:`modelhost.tensors.raw`, which the REST binary extension shares) or each in its
typed ``contents`` field. Outputs go back raw — what tritonclient reads, and the cheapest to make
— unless the request itself used typed contents, in which case they go back typed too (except
when an output is FP16, which has no typed field).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelhost.errors import BadRequest, InvalidTensor
from modelhost.grpc.generated import grpc_predict_v2_pb2 as pb
from modelhost.inference.types import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelhost.tensors.datatypes import DATATYPES, NUMPY_DTYPES
from modelhost.tensors.raw import from_bytes, to_bytes

# The typed ``InferTensorContents`` field of each datatype (FP16 has none: it must be raw).
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# Numbers in a field wider than their datatype (int_contents for INT8) are range-checked.
_NARROW = {"INT8", "INT16", "UINT8", "UINT16"}


def parameters_of(parameters: Any) -> dict[str, Any]:
    """A protobuf ``map<string, InferParameter>`` as plain Python values."""
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, choice) if choice is not None else None
    return values


def decode_request(message: pb.ModelInferRequest) -> InferenceRequest:
    """The request as the inference service takes it; every problem is a 400 naming the input."""
    if not message.inputs:
        raise BadRequest("'inputs' must name at least one tensor")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidTensor(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs: "
            "give one per input, in the order of 'inputs'"
        )
    inputs = [
        _decode_input(item, raw[position] if raw else None)
        for position, item in enumerate(message.inputs)
    ]
    names = [tensor.name for tensor in inputs]
    if len(set(names)) != len(names):
        raise InvalidTensor(f"input names repeat: {names}")
    return InferenceRequest(
        model_name=message.model_name,
        model_version=message.model_version or None,
        inputs=inputs,
        outputs=[RequestedOutput(output.name) for output in message.outputs],
        id=message.id or None,
        parameters=parameters_of(message.parameters),
    )


def _decode_input(item: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> Tensor:
    name, datatype = item.name, item.datatype
    if not name:
        raise BadRequest("every input needs a 'name'")
    if datatype not in DATATYPES:
        raise InvalidTensor(
            f"input {name!r}: unknown datatype {datatype!r}; one of {sorted(DATATYPES)}"
        )
    shape = tuple(item.shape)
    if any(dim < 0 for dim in shape):
        raise InvalidTensor(f"input {name!r}: 'shape' must hold non-negative integers")
    if raw is not None:
        if item.HasField("contents"):
            raise InvalidTensor(
                f"input {name!r} has typed 'contents' as well as raw_input_contents; use one"
            )
        return Tensor(name, datatype, from_bytes(name, datatype, shape, raw))
    return Tensor(name, datatype, _from_contents(name, datatype, shape, item.contents))


def _from_contents(
    name: str, datatype: str, shape: tuple[int, ...], contents: pb.InferTensorContents
) -> np.ndarray:
    field = CONTENTS_FIELDS.get(datatype)
    if field is None:
        raise InvalidTensor(f"input {name!r}: {datatype} data must be sent in raw_input_contents")
    given = [other.name for other, _ in contents.ListFields()]
    if any(other != field for other in given):
        raise InvalidTensor(
            f"input {name!r}: {datatype} data goes in contents.{field}, got {sorted(given)}"
        )
    values = getattr(contents, field)
    count = int(np.prod(shape, dtype=np.int64))
    if len(values) != count:
        raise InvalidTensor(
            f"input {name!r}: shape {list(shape)} needs {count} elements, got {len(values)}"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    target = NUMPY_DTYPES[datatype]
    if datatype in _NARROW and count:
        wide = np.asarray(values, dtype=np.int64)
        info = np.iinfo(target.name)
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidTensor(f"input {name!r}: a value is out of range for {datatype}")
        return wide.astype(target).reshape(shape)
    return np.asarray(values, dtype=target).reshape(shape)


def encode_response(
    response: InferenceResponse, *, typed: bool, batch_size: int
) -> pb.ModelInferResponse:
    """The answer: outputs raw, or typed when ``typed`` (and every output has a typed field).

    ``batch_size`` (how many requests ran in the same model call) goes in the response's
    parameters, as REST's X-Batch-Size header.
    """
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version
    )
    if response.id is not None:
        message.id = response.id
    message.parameters["batch_size"].int64_param = batch_size
    typed = typed and all(tensor.datatype in CONTENTS_FIELDS for tensor in response.outputs)
    for tensor in response.outputs:
        output = message.outputs.add(
            name=tensor.name, datatype=tensor.datatype, shape=tensor.data.shape
        )
        if typed:
            _to_contents(tensor, output.contents)
        else:
            message.raw_output_contents.append(to_bytes(tensor.datatype, tensor.data))
    return message


def _to_contents(tensor: Tensor, contents: pb.InferTensorContents) -> None:
    values = getattr(contents, CONTENTS_FIELDS[tensor.datatype])
    flat = tensor.data.reshape(-1)
    if tensor.datatype == "BYTES":
        values.extend(item if isinstance(item, bytes) else str(item).encode() for item in flat)
    else:
        values.extend(flat.tolist())
