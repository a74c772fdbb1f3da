"""A queued request, and one model call for a batch of them: join their inputs, predict once
(in a worker thread: model code and the copies it takes stay off the event loop), and hand each
request exactly its own rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from modelhost.errors import ModelhostError
from modelhost.inference.validation import conform_outputs
from modelhost.manifest import TensorSpec
from modelhost.runtimes.base import Runtime, Tensors
from modelhost.runtimes.pool import InstancePool

# Whose a request is when nobody says (one tenant: the queue is first come, first served).
ANYONE = ""


@dataclass(eq=False, slots=True)
class QueuedRequest:
    """One request waiting in a model's queue, and the future its answer goes to."""

    inputs: Tensors
    rows: int
    signature: tuple[tuple[str, tuple[int, ...]], ...]
    deadline: float
    future: asyncio.Future[tuple[Tensors, int]]
    enqueued: float
    tenant: Hashable
    # Kept by the fair queue.
    start: float = 0.0
    seq: int = 0
    queued: bool = False


async def run_batch(
    pool: InstancePool,
    instance: Runtime,
    batch: list[QueuedRequest],
    specs: list[TensorSpec],
    label: str,
) -> None:
    """Run ``batch`` as one call on ``instance`` and answer each request with its own rows."""
    inputs = [pending.inputs for pending in batch]
    sizes = [pending.rows for pending in batch]
    try:
        results = await pool.run(
            instance, lambda runtime: predict_batch(runtime, inputs, sizes, specs, label)
        )
    except Exception as exc:
        if len(batch) == 1:
            _fail(batch, as_error(exc, label))
        else:
            # One request's bad data must not fail the others batched with it: run each
            # alone (on a fresh slot; the batch's slot went back when its call ended).
            await asyncio.gather(*(_run_alone(pool, pending, specs, label) for pending in batch))
    else:
        for pending, outputs in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result((outputs, len(batch)))


async def _run_alone(
    pool: InstancePool, pending: QueuedRequest, specs: list[TensorSpec], label: str
) -> None:
    inputs = [pending.inputs]
    try:
        results = await pool.call(
            lambda runtime: predict_batch(runtime, inputs, [pending.rows], specs, label)
        )
    except Exception as exc:
        _fail([pending], as_error(exc, label))
    else:
        if not pending.future.done():
            pending.future.set_result((results[0], 1))


def _fail(batch: list[QueuedRequest], error: ModelhostError) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(type(error)(error.message))


def as_error(exc: Exception, label: str) -> ModelhostError:
    """What a failed model call answers: a modelhost error, or one naming the model and cause."""
    if isinstance(exc, ModelhostError):
        return exc
    return ModelhostError(f"model {label} failed: {type(exc).__name__}: {exc}")


def predict_batch(
    runtime: Runtime,
    inputs: list[Tensors],
    sizes: list[int],
    specs: list[TensorSpec],
    label: str,
) -> list[Tensors]:
    """In a worker thread: concatenate, predict once, conform, and split by rows."""
    if len(inputs) == 1:
        return [conform_outputs(runtime.predict(inputs[0]), specs, label)]
    merged = {name: np.concatenate([item[name] for item in inputs]) for name in inputs[0]}
    outputs = conform_outputs(runtime.predict(merged), specs, label)
    total = sum(sizes)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise ModelhostError(
                f"model {label} returned {name!r} with {array.shape[0] if array.ndim else 0} "
                f"rows for a batch of {total}"
            )
    cuts = np.cumsum(sizes)[:-1]
    split = {name: np.split(array, cuts) for name, array in outputs.items()}
    return [{name: parts[i] for name, parts in split.items()} for i in range(len(inputs))]
