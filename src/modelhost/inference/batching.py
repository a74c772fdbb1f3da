"""Per-model scheduling: a bounded queue, deadlines, and dynamic batching.

Each loaded model version gets one :class:`ModelScheduler`. Requests join its queue; a
dispatcher takes a free instance slot, gathers queued requests whose non-batch dimensions match
(waiting at most ``max_delay_ms`` after the oldest arrived, less if the batch fills or reaches a
preferred size), concatenates them along the batch dimension, runs the model once in a worker
thread and hands each request exactly its own rows. While every slot is busy the queue grows, so
batches grow with load. Models without ``batching`` in model.yaml go through the same queue one
request at a time.

The queue is shared fairly between users (:mod:`inference.fair_queue`): requests are taken in
fair-share order across users, a batch is filled from all of them, and when the queue is full
the user holding the most of it is refused first.

A request still queued at its deadline is dropped before it runs (504); a request arriving to a
full queue is refused at once (503) with a Retry-After drawn from how fast the queue drains; so
is one whose place in the queue could not start before its deadline. A request whose client
goes away leaves the queue at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Hashable
from dataclasses import dataclass

from modelhost.errors import DeadlineExceeded, QueueFull
from modelhost.inference.batch_call import ANYONE, QueuedRequest, run_batch
from modelhost.inference.deadline import deadline_clock
from modelhost.inference.fair_queue import FairQueue
from modelhost.manifest import Manifest
from modelhost.observability.loop_metrics import HistogramChild
from modelhost.observability.metrics import Metrics
from modelhost.runtimes.base import Runtime, Tensors
from modelhost.runtimes.pool import InstancePool

# How long a dispatcher may run cheap model calls back to back on the event loop before it
# lets everything else on the loop have a turn (see ModelScheduler._dispatch).
_INLINE_TURN_SECONDS = 0.002

# Durations (a model call, a queue wait, an inline turn) are timed with perf_counter, not the
# loop's clock: uvloop's loop.time() counts whole milliseconds, so a 50 us call timed with it
# took 0 s, and a model that "cost nothing" admitted a deadline no call could meet.
_clock = time.perf_counter


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
            self._waits: HistogramChild | None = metrics.queue_wait.labels(*labels)
            self._batch_sizes: HistogramChild | None = metrics.batch_size.labels(*labels)
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
        self._queue: FairQueue[QueuedRequest] = FairQueue()
        self._arrived = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        # One timer for the whole queue, due at the earliest deadline in it, instead of one per
        # request (arming and cancelling one cost ~2.5 us a request on the event loop).
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = 0.0  # the deadline it is due at
        self._running: set[asyncio.Task[None]] = set()
        self.stats = SchedulerStats()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def submit(
        self, inputs: Tensors, rows: int, deadline: float, tenant: Hashable = ANYONE
    ) -> tuple[Tensors, int]:
        """Run ``inputs`` (``rows`` along the batch dimension) by ``deadline`` (on
        :func:`deadline_clock`), as one of ``tenant``'s requests (the unit of fair shares: a
        user).

        Returns every output, cut to this request's rows, and the size of the batch it ran in.
        """
        loop = asyncio.get_running_loop()
        ahead = self._queue.ahead_of(tenant)
        expected_wait = self._seconds_before(ahead)
        # ... and then the batch it joins has to run (deadlines bound the answer, not the start).
        own_batch = min(ahead + 1, self._max_rows) * self.stats.seconds_per_request
        left = deadline - deadline_clock()
        if left <= 0 or self.stats.seconds_per_request > left:
            # Not even alone, in an empty queue, could it finish in time: the deadline is at
            # fault, not the queue (another replica would not do better).
            self.stats.rejected += 1
            raise DeadlineExceeded(
                f"the request's deadline leaves {max(left, 0.0) * 1000:.3f} ms; model "
                f"{self._label} takes about {self.stats.seconds_per_request * 1000:.3f} ms a call"
            )
        if expected_wait + own_batch > left:
            # It would only wait to be dropped: say so now, while the client can go elsewhere.
            self.stats.rejected += 1
            raise QueueFull(
                f"model {self._label} has {ahead} requests to run before this one, about "
                f"{expected_wait:.2f}s of work: more than this request's deadline allows",
                retry_after=self._retry_after(),
            )
        self._make_room(tenant, rows)
        signature = tuple((name, array.shape[1:]) for name, array in inputs.items())
        pending = QueuedRequest(
            inputs, rows, signature, deadline, loop.create_future(), _clock(), tenant
        )
        self._queue.push(pending)
        if self._sweep is None or deadline < self._sweep_at:
            self._arm_sweep(deadline)
        self._arrived.set()
        if self._dispatcher is None:
            self._dispatcher = loop.create_task(self._dispatch())
        try:
            return await pending.future
        finally:
            # Still queued here only if its client went away: it leaves, and its share with it.
            self._queue.remove(pending)

    def check_room(self, tenant: Hashable = ANYONE, rows: int = 1) -> None:
        """Raise QueueFull if the queue is full and ``tenant`` may not displace a heavier
        user's request (cheap: routes ask before decoding a body)."""
        if len(self._queue) >= self._max_queue and (self._queue.displaceable(tenant, rows) is None):
            self.stats.rejected += 1
            raise self._full()

    def _make_room(self, tenant: Hashable, rows: int) -> None:
        """Admit one more request of ``tenant``: in a full queue, the heaviest user's newest
        request is refused in its place, or, if ``tenant`` is the heaviest, this one is."""
        if len(self._queue) < self._max_queue:
            return
        victim = self._queue.displaceable(tenant, rows)
        self.stats.rejected += 1
        if victim is None:
            raise self._full()
        self._queue.remove(victim)
        if not victim.future.done():
            victim.future.set_exception(self._full())

    def _full(self) -> QueueFull:
        return QueueFull(
            f"model {self._label} has {len(self._queue)} requests waiting, its "
            f"max_queue_size, and this user holds a full share of them; try again shortly",
            retry_after=self._retry_after(),
        )

    def _arm_sweep(self, at: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        # Armed by delay: the loop's clock is not the deadlines' (see deadline_clock).
        delay = max(at - deadline_clock(), 0.0)
        self._sweep = asyncio.get_running_loop().call_later(delay, self._expire_due)
        self._sweep_at = at

    def _expire_due(self) -> None:
        """The earliest deadline came: drop every queued request whose deadline passed (those
        running finish), and wait for the next earliest. Requests that left the queue before
        their deadline cost only this sweep finding nothing."""
        self._sweep = None
        now = deadline_clock()
        due = [pending for pending in self._queue if pending.deadline <= now]
        for pending in due:
            self._queue.remove(pending)
            self.stats.expired += 1
            if not pending.future.done():
                pending.future.set_exception(
                    DeadlineExceeded(
                        f"the request waited past its deadline for model {self._label}"
                    )
                )
        if self._queue:
            self._arm_sweep(min(pending.deadline for pending in self._queue))

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            turn_started = _clock()
            while self._queue:
                instance = await self._pool.acquire()
                if self._batching:
                    await self._gather()
                batch = self._take_batch()
                if not batch:
                    self._pool.release(instance)
                    continue
                self._observe(batch)
                if not self._pool.runs_inline:
                    task = loop.create_task(self._execute(instance, batch))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                    continue
                # A call cheap enough for the event loop runs right here, and the next queued
                # one after it, in fair order, in the same turn of the loop: one turn for many
                # requests instead of a task and two turns each (~120 us a request unbatched).
                # The loop gets its turn back every _INLINE_TURN_SECONDS, so answers go out and
                # new requests come in, and other models' dispatchers run, without a long wait.
                await self._execute(instance, batch)
                if _clock() - turn_started >= _INLINE_TURN_SECONDS:
                    await asyncio.sleep(0)
                    turn_started = _clock()
        finally:
            self._dispatcher = None

    def _observe(self, batch: list[QueuedRequest]) -> None:
        if self._waits is None or self._batch_sizes is None:
            return
        now = _clock()
        for pending in batch:
            self._waits.observe(now - pending.enqueued)
        self._batch_sizes.observe(len(batch))

    async def _gather(self) -> None:
        """Wait, at most ``max_delay_ms``, for the batch to fill or reach a preferred size.

        The wait also ends when requests stop arriving for a quarter of the delay: under a
        steady load that cannot fill a batch, waiting longer only leaves the core idle.
        """
        first = self._queue.peek()
        if first is None:
            return
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

    def _rows_like(self, first: QueuedRequest) -> int:
        rows = 0
        for pending in self._queue:
            if pending.signature == first.signature and not pending.future.done():
                rows += pending.rows
                if rows >= self._max_rows:
                    break
        return rows

    def _take_batch(self) -> list[QueuedRequest]:
        """The next batch, in fair-share order across users: the first request and every later
        one of the same inner shapes that still fits."""
        batch: list[QueuedRequest] = []
        gone: list[QueuedRequest] = []
        rows = 0
        for pending in self._queue:
            if rows >= self._max_rows:
                break
            if pending.future.done():  # cancelled by its client, not yet out of the queue
                gone.append(pending)
                continue
            if batch and (
                pending.signature != batch[0].signature or rows + pending.rows > self._max_rows
            ):
                continue
            batch.append(pending)
            rows += pending.rows
        for pending in gone:
            self._queue.remove(pending)
        self._queue.take(batch)
        return batch

    async def _execute(self, instance: Runtime, batch: list[QueuedRequest]) -> None:
        started = _clock()
        try:
            await run_batch(self._pool, instance, batch, self._specs, self._label)
        finally:
            self._record(len(batch), _clock() - started)

    def _record(self, requests: int, seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.requests += requests
        # Model time per request while running (idle time between batches is not in it).
        cost = seconds / requests
        stats.seconds_per_request = (
            cost if not stats.seconds_per_request else 0.8 * stats.seconds_per_request + 0.2 * cost
        )

    def expected_wait(self, tenant: Hashable | None = None) -> float:
        """Seconds before a new request (of ``tenant``: its fair place; None: the end of the
        queue) would run: the requests before it, and the calls running now."""
        return self._seconds_before(
            len(self._queue) if tenant is None else self._queue.ahead_of(tenant)
        )

    def _seconds_before(self, queued_ahead: int) -> float:
        ahead = queued_ahead + self._pool.busy
        return ahead * self.stats.seconds_per_request / self._pool.capacity

    def _retry_after(self) -> float:
        return max(1.0, math.ceil(self.expected_wait()))
