"""Requests checked against the model's manifest before the model runs, outputs after."""

from __future__ import annotations

import numpy as np

from modelhost.errors import InvalidTensor, ModelhostError
from modelhost.inference.types import RequestedOutput, Tensor
from modelhost.manifest import Manifest, TensorSpec
from modelhost.runtimes.base import Tensors
from modelhost.tensors.datatypes import NUMPY_DTYPES


def check_inputs(inputs: list[Tensor], manifest: Manifest) -> Tensors:
    """The request's tensors by name, once each matches its declared datatype and shape."""
    given = {tensor.name: tensor for tensor in inputs}
    for name in given:
        _spec(name, manifest)
    batch_sizes: set[int] = set()
    arrays: Tensors = {}
    for spec in manifest.inputs:
        tensor = given.get(spec.name)
        if tensor is None:
            raise InvalidTensor(f"missing input {spec.name!r}; the model takes {_names(manifest)}")
        check_declared(spec.name, tensor.datatype, tensor.shape, manifest)
        if manifest.max_batch_size and tensor.shape:
            batch_sizes.add(tensor.shape[0])
        arrays[spec.name] = tensor.data
    if len(batch_sizes) > 1:
        raise InvalidTensor(f"inputs disagree on the batch size: {sorted(batch_sizes)}")
    return arrays


def check_declared(name: str, datatype: str, shape: tuple[int, ...], manifest: Manifest) -> None:
    """One input as a client declares it (name, datatype, shape), checked against the model
    before its data is decoded: a refused tensor costs no decoding."""
    spec = _spec(name, manifest)
    if datatype != spec.datatype:
        raise InvalidTensor(f"input {name!r} is {datatype}; the model takes {spec.datatype}")
    wanted = spec.shape
    fits = len(shape) == len(wanted)
    if fits:
        # A loop, not all(...) over a generator: this runs twice a request.
        for want, got in zip(wanted, shape, strict=True):
            if want != got and want != -1:
                fits = False
                break
    if not fits:
        raise InvalidTensor(
            f"input {name!r} has shape {list(shape)}; the model takes {list(wanted)} (-1: any size)"
        )
    if manifest.max_batch_size and shape and shape[0] > manifest.max_batch_size:
        raise InvalidTensor(
            f"batch size {shape[0]} is over the model's max_batch_size {manifest.max_batch_size}"
        )


def _spec(name: str, manifest: Manifest) -> TensorSpec:
    spec = manifest.input(name)
    if spec is None:
        raise InvalidTensor(f"unknown input {name!r}; the model takes {_names(manifest)}")
    return spec


def _names(manifest: Manifest) -> list[str]:
    return [spec.name for spec in manifest.inputs]


def check_requested(requested: list[RequestedOutput], manifest: Manifest) -> list[TensorSpec]:
    """The outputs to return, in the order asked (all of them when none are named)."""
    if not requested:
        return list(manifest.outputs)
    specs: list[TensorSpec] = []
    for output in requested:
        spec = manifest.output(output.name)
        if spec is None:
            raise InvalidTensor(
                f"unknown output {output.name!r}; the model gives "
                f"{[s.name for s in manifest.outputs]}"
            )
        specs.append(spec)
    return specs


def conform_outputs(outputs: Tensors, specs: list[TensorSpec], model: str) -> Tensors:
    """The model's outputs as the manifest declares them (a model that breaks it is a 500)."""
    conformed: Tensors = {}
    for spec in specs:
        value = outputs.get(spec.name)
        if value is None:
            raise ModelhostError(f"model {model} returned no output {spec.name!r}")
        array = np.asarray(value)
        if spec.datatype == "BYTES":
            if array.dtype != object:
                array = array.astype(object)
        elif array.dtype != NUMPY_DTYPES[spec.datatype]:
            array = array.astype(NUMPY_DTYPES[spec.datatype])
        if len(array.shape) != len(spec.shape):
            raise ModelhostError(
                f"model {model} returned {spec.name!r} with shape {list(array.shape)}; "
                f"its model.yaml says {list(spec.shape)}"
            )
        conformed[spec.name] = array
    return conformed
