"""The instances of one loaded model version, and who may call which of them when.

A call runs in a worker thread, unless the model has proven cheap: when the calls measured so
far cost (in CPU time, smoothed) under ``inline_below`` seconds, the call runs on the event loop
itself, where the hop to a thread and back would cost more than the call (a scikit-learn
``predict`` on one row: ~100 µs of work against ~60 µs and four context switches for the hop).
Only runtimes whose calls just compute on the calling thread may run inline (scikit-learn,
ONNX on one thread: ``Runtime.may_run_inline``). Every call is measured, inline or not: a model
that turns slow goes back to the threads after one slow call, and one that blocked the loop
for ten times the limit three times within a minute never runs inline again. (Once is not
enough: on a shared host a call of 0.2 ms now and then measures 2-5 ms of CPU time with no
garbage collection in it, and one such call must not cost a cheap model the loop for good.)

A runtime that is not thread-safe gets one call at a time per instance; a thread-safe one gets
``calls_per_instance``. A slot is only given back when its thread is done, even if the request
that started it was cancelled, so an instance is never entered twice and never unloaded under
a running call.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from modelhost.runtimes.base import Runtime

T = TypeVar("T")

# A model that blocks the loop for ten times the limit this many times within the window never
# runs inline again (see the module's doc).
BLOCKS_ALLOWED = 3
BLOCK_WINDOW_SECONDS = 60.0


class InstancePool:
    """Hands out call slots on a model's instances, first come first served."""

    def __init__(
        self,
        instances: list[Runtime],
        calls_per_instance: int,
        executor: Executor,
        *,
        inline_below: float = 0.0,
    ):
        self.instances = instances
        self._executor = executor
        # Only runtimes whose calls just compute on the calling thread: a call that sleeps,
        # waits on I/O or on threads of its own would look cheap in CPU time.
        inline_ok = all(i.may_run_inline and i.threads == 1 for i in instances)
        self._inline_below = inline_below if inline_ok and instances else 0.0
        # CPU seconds a call took, smoothed; unknown (None) until a few calls were measured.
        self.call_seconds: float | None = None
        self._measured = 0
        self._blocks: deque[float] = deque(maxlen=BLOCKS_ALLOWED)  # when inline calls blocked
        self._free: deque[Runtime] = deque(
            instance for _ in range(calls_per_instance) for instance in instances
        )
        self.capacity = len(self._free)
        self._waiters: deque[asyncio.Future[Runtime]] = deque()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def busy(self) -> int:
        return self.capacity - len(self._free)

    async def call(self, work_on: Callable[[Runtime], T]) -> T:
        """Run ``work_on(instance)`` in a worker thread on a free instance."""
        return await self.run(await self.acquire(), work_on)

    @property
    def runs_inline(self) -> bool:
        """Whether calls are cheap enough to run on the event loop (see the module's doc)."""
        return self.call_seconds is not None and self.call_seconds < self._inline_below

    async def run(self, instance: Runtime, work_on: Callable[[Runtime], T]) -> T:
        """Run ``work_on(instance)`` (in a worker thread unless calls are cheap), then give the
        slot back."""
        if self.runs_inline:
            try:
                return self._measure(work_on, instance)
            finally:
                self.release(instance)
        loop = asyncio.get_running_loop()
        work = self._executor.submit(self._measure, work_on, instance)
        try:
            result = await asyncio.wrap_future(work, loop=loop)
        except asyncio.CancelledError:
            if work.done():
                self.release(instance)
            else:  # the thread is still running: the slot comes back when it ends
                work.add_done_callback(lambda _: loop.call_soon_threadsafe(self.release, instance))
            raise
        except BaseException:
            self.release(instance)
            raise
        self.release(instance)
        return result

    def _measure(self, work_on: Callable[[Runtime], T], instance: Runtime) -> T:
        # A call's cost is the CPU time of the thread it ran on: its wall time would count the
        # waits for the GIL, or for the core, on a busy server. (Wall and CPU time are one for
        # the runtimes allowed inline: they only compute, on the calling thread.)
        inline = self.runs_inline
        started = time.thread_time()
        try:
            return work_on(instance)
        finally:
            seconds = time.thread_time() - started
            if inline and seconds > 10 * self._inline_below:
                self._blocked()
            self._observe(seconds)

    def _blocked(self) -> None:
        # Only ever on the event loop's thread (an inline call): no race on the deque.
        now = time.monotonic()
        self._blocks.append(now)
        if len(self._blocks) == BLOCKS_ALLOWED and now - self._blocks[0] < BLOCK_WINDOW_SECONDS:
            self._inline_below = 0.0  # blocked the loop badly, again and again: never again

    def _observe(self, seconds: float) -> None:
        # Plain float updates: a race between two threads loses a sample, nothing more.
        self._measured += 1
        if self._measured == 1:
            return  # a model's first call pays one-off costs: not a measure of the next ones
        previous = self.call_seconds
        if previous is None or seconds > 4 * previous:
            self.call_seconds = seconds  # a slow call is believed at once: no second one inline
        else:
            self.call_seconds = 0.8 * previous + 0.2 * seconds

    async def acquire(self) -> Runtime:
        """A free call slot; pair with :meth:`release` (or hand it to :meth:`run`)."""
        if self._free and not self._waiters:
            self._idle.clear()
            return self._free.popleft()
        waiter: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed a slot just as we were cancelled
            else:
                self._waiters.remove(waiter)
            raise

    def release(self, instance: Runtime) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(instance)
                return
        self._free.append(instance)
        if len(self._free) == self.capacity:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no call is running (before unloading the instances)."""
        await self._idle.wait()
