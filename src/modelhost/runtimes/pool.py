"""The instances of one loaded model version, and who may call which of them when.

Every call runs in a worker thread. A runtime that is not thread-safe gets one call at a time
per instance; a thread-safe one gets ``calls_per_instance``. A slot is only given back when its
thread is done, even if the request that started it was cancelled, so an instance is never
entered twice and never unloaded under a running call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from modelhost.runtimes.base import Runtime

T = TypeVar("T")


class InstancePool:
    """Hands out call slots on a model's instances, first come first served."""

    def __init__(self, instances: list[Runtime], calls_per_instance: int, executor: Executor):
        self.instances = instances
        self._executor = executor
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

    @property
    def has_free_slot(self) -> bool:
        return bool(self._free) and not self._waiters

    async def call(self, work_on: Callable[[Runtime], T]) -> T:
        """Run ``work_on(instance)`` in a worker thread on a free instance."""
        return await self.run(await self.acquire(), work_on)

    async def run(self, instance: Runtime, work_on: Callable[[Runtime], T]) -> T:
        """Run ``work_on(instance)`` in a worker thread, then give the slot back."""
        loop = asyncio.get_running_loop()
        work = self._executor.submit(work_on, instance)
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
