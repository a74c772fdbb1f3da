"""Per-model scheduling: a bounded queue, deadlines, and dynamic batching.

Each loaded model version gets one :class:`ModelScheduler`. Requests join its queue; a
dispatcher takes a free instance slot, gathers queued requests whose non-batch dimensions match
(waiting at most ``max_delay_ms`` after the oldest arrived, less if the batch fills or reaches a
preferred size), concatenates them along the batch dimension, runs the model once in a worker
thread and hands each request exactly its own rows. While every slot is busy the queue grows, so
batches grow with load. Models without ``batching`` in model.yaml go through the same queue one
request at a time.

A request still queued at its deadline is dropped before it runs (504); a request arriving to a
full queue is refused at once (503) with a Retry-After drawn from how fast the queue drains.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from prometheus_client import Histogram

from modelhost.errors import DeadlineExceeded, ModelhostError, QueueFull
from modelhost.inference.validation import conform_outputs
from modelhost.manifest import Manifest, TensorSpec
from modelhost.observability.metrics import Metrics
from modelhost.runtimes.base import Runtime, Tensors
from modelhost.runtimes.pool import InstancePool


@dataclass(eq=False, slots=True)
class _Pending:
    inputs: Tensors
    rows: int
    signature: tuple[tuple[str, tuple[int, ...]], ...]
    deadline: float
    future: asyncio.Future[tuple[Tensors, int]]
    enqueued: float
    timer: asyncio.TimerHandle | None = None


@dataclass
class SchedulerStats:
    """Counters since the model loaded, for metrics and Retry-After."""

    batches: int = 0
    requests: int = 0
    expired: int = 0
    rejected: int = 0
    # Model time per request, smoothed: how fast the queue drains.
    seconds_per_request: float = 0.0


class ModelScheduler:
    """Queues one model version's requests and runs them on its instances."""

    def __init__(
        self, pool: InstancePool, manifest: Manifest, label: str, metrics: Metrics | None = None
    ) -> None:
        self._pool = pool
        if metrics is not None:
            labels = (label.rsplit("/", 1)[0], label.rsplit("/", 1)[1])
            self._waits: Histogram | None = metrics.queue_wait.labels(*labels)
            self._batch_sizes: Histogram | None = metrics.batch_size.labels(*labels)
        else:
            self._waits = self._batch_sizes = None
        self._label = label
        self._batching = manifest.batching is not None and manifest.max_batch_size > 0
        self._max_rows = manifest.max_batch_size if self._batching else 1
        self._delay = manifest.batching.max_delay_ms / 1000 if manifest.batching else 0.0
        preferred = manifest.batching.preferred_batch_sizes if manifest.batching else ()
        self._preferred = frozenset(preferred)
        self._specs = list(manifest.outputs)
        self._max_queue = manifest.max_queue_size
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.stats = SchedulerStats()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def submit(self, inputs: Tensors, rows: int, deadline: float) -> tuple[Tensors, int]:
        """Run ``inputs`` (``rows`` along the batch dimension) by ``deadline`` (loop time).

        Returns every output, cut to this request's rows, and the size of the batch it ran in.
        """
        loop = asyncio.get_running_loop()
        self.check_room()
        expected_wait = self.expected_wait()
        # ... and then the batch it joins has to run (deadlines bound the answer, not the start).
        own_batch = min(len(self._queue) + 1, self._max_rows) * self.stats.seconds_per_request
        if expected_wait + own_batch > deadline - loop.time():
            # It would only wait to be dropped: say so now, while the client can go elsewhere.
            self.stats.rejected += 1
            raise QueueFull(
                f"model {self._label} has {len(self._queue)} requests waiting, about "
                f"{expected_wait:.2f}s of work: more than this request's deadline allows",
                retry_after=self._retry_after(),
            )
        signature = tuple((name, array.shape[1:]) for name, array in inputs.items())
        pending = _Pending(inputs, rows, signature, deadline, loop.create_future(), loop.time())
        pending.timer = loop.call_at(deadline, self._expire, pending)
        self._queue.append(pending)
        self._arrived.set()
        if self._dispatcher is None:
            self._dispatcher = loop.create_task(self._dispatch())
        try:
            return await pending.future
        finally:
            pending.timer.cancel()

    def check_room(self) -> None:
        """Raise QueueFull if the queue is full (cheap: routes ask before decoding a body)."""
        if len(self._queue) >= self._max_queue:
            self.stats.rejected += 1
            raise QueueFull(
                f"model {self._label} has {len(self._queue)} requests waiting, its "
                f"max_queue_size; try again shortly",
                retry_after=self._retry_after(),
            )

    def _expire(self, pending: _Pending) -> None:
        """The deadline passed: drop the request if it has not started."""
        try:
            self._queue.remove(pending)
        except ValueError:
            return  # already running: it finishes
        self.stats.expired += 1
        if not pending.future.done():
            pending.future.set_exception(
                DeadlineExceeded(f"the request waited past its deadline for model {self._label}")
            )

    async def _dispatch(self) -> None:
        try:
            while self._queue:
                instance = await self._pool.acquire()
                if self._batching:
                    await self._gather()
                batch = self._take_batch()
                if not batch:
                    self._pool.release(instance)
                    continue
                self._observe(batch)
                task = asyncio.get_running_loop().create_task(self._execute(instance, batch))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        finally:
            self._dispatcher = None

    def _observe(self, batch: list[_Pending]) -> None:
        if self._waits is None or self._batch_sizes is None:
            return
        now = asyncio.get_running_loop().time()
        for pending in batch:
            self._waits.observe(now - pending.enqueued)
        self._batch_sizes.observe(len(batch))

    async def _gather(self) -> None:
        """Wait, at most ``max_delay_ms``, for the batch to fill or reach a preferred size.

        The wait also ends when requests stop arriving for a quarter of the delay: under a
        steady load that cannot fill a batch, waiting longer only leaves the core idle.
        """
        if not self._queue:
            return
        first = self._queue[0]
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._delay
        quiet = self._delay / 4
        while True:
            rows = self._rows_like(first)
            if rows >= self._max_rows or rows in self._preferred:
                return
            remaining = give_up_at - loop.time()
            if remaining <= 0 or first.future.done():
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(remaining, quiet))
            except TimeoutError:
                return

    def _rows_like(self, first: _Pending) -> int:
        rows = 0
        for pending in self._queue:
            if pending.signature == first.signature and not pending.future.done():
                rows += pending.rows
                if rows >= self._max_rows:
                    break
        return rows

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        skipped: list[_Pending] = []
        rows = 0
        while self._queue and rows < self._max_rows:
            pending = self._queue.popleft()
            if pending.future.done():  # cancelled by its client, or expired
                continue
            if batch and (
                pending.signature != batch[0].signature or rows + pending.rows > self._max_rows
            ):
                skipped.append(pending)
                continue
            batch.append(pending)
            rows += pending.rows
        self._queue.extendleft(reversed(skipped))
        return batch

    async def _execute(self, instance: Runtime, batch: list[_Pending]) -> None:
        inputs = [pending.inputs for pending in batch]
        sizes = [pending.rows for pending in batch]
        specs, label = self._specs, self._label
        started = asyncio.get_running_loop().time()
        try:
            results = await self._pool.run(
                instance, lambda runtime: _predict_batch(runtime, inputs, sizes, specs, label)
            )
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch, _as_error(exc, label))
            else:
                # One request's bad data must not fail the others batched with it: run each
                # alone (on a fresh slot; the batch's slot went back when its call ended).
                await asyncio.gather(*(self._execute_alone(pending) for pending in batch))
        else:
            for pending, outputs in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result((outputs, len(batch)))
        finally:
            self._record(len(batch), asyncio.get_running_loop().time() - started)

    async def _execute_alone(self, pending: _Pending) -> None:
        specs, label, inputs = self._specs, self._label, [pending.inputs]
        try:
            results = await self._pool.call(
                lambda runtime: _predict_batch(runtime, inputs, [pending.rows], specs, label)
            )
        except Exception as exc:
            self._fail([pending], _as_error(exc, label))
        else:
            if not pending.future.done():
                pending.future.set_result((results[0], 1))

    @staticmethod
    def _fail(batch: list[_Pending], error: ModelhostError) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(type(error)(error.message))

    def _record(self, requests: int, seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.requests += requests
        # Model time per request while running (idle time between batches is not in it).
        cost = seconds / requests
        stats.seconds_per_request = (
            cost if not stats.seconds_per_request else 0.8 * stats.seconds_per_request + 0.2 * cost
        )

    def expected_wait(self) -> float:
        """Seconds before a new request would run: the queue, and the calls running now."""
        ahead = len(self._queue) + self._pool.busy
        return ahead * self.stats.seconds_per_request / self._pool.capacity

    def _retry_after(self) -> float:
        return max(1.0, math.ceil(self.expected_wait()))


def _as_error(exc: Exception, label: str) -> ModelhostError:
    if isinstance(exc, ModelhostError):
        return exc
    return ModelhostError(f"model {label} failed: {type(exc).__name__}: {exc}")


def _predict_batch(
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
