"""Fair shares in a model's queue: the queue itself, and a scheduler running a real instance
pool on a runtime that is a real object (it records who was in each call)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest

from modelhost.errors import QueueFull
from modelhost.inference.batching import ModelScheduler
from modelhost.inference.fair_queue import FairQueue
from modelhost.manifest import Manifest
from modelhost.runtimes.base import Runtime, Tensors
from modelhost.runtimes.pool import InstancePool


@dataclass(eq=False)
class Item:
    tenant: Hashable
    rows: int = 1
    start: float = 0.0
    seq: int = 0
    queued: bool = False


def _order(queue: FairQueue[Item]) -> list[Hashable]:
    return [item.tenant for item in queue]


def test_a_tenant_sending_ten_times_more_gets_the_same_share() -> None:
    queue: FairQueue[Item] = FairQueue()
    for _ in range(10):
        queue.push(Item("heavy"))
    queue.push(Item("light"))
    queue.push(Item("light"))
    # The light tenant arrived last but is not behind the heavy one's backlog.
    assert _order(queue)[:4] == ["heavy", "light", "heavy", "light"]
    # A third request of the light tenant would wait for 3 of the heavy one's, and 2 of its own.
    assert queue.ahead_of("light") == 5 and queue.ahead_of("newcomer") == 2
    assert queue.ahead_of("heavy") == 12


def test_rows_not_requests_are_shared() -> None:
    queue: FairQueue[Item] = FairQueue()
    queue.push(Item("big", rows=4))
    queue.push(Item("big", rows=4))
    for _ in range(8):
        queue.push(Item("small"))
    taken = [(item.tenant, item.rows) for item in queue]
    # Until both lanes end, neither tenant is more than one request's rows ahead of the other.
    big = small = 0
    for tenant, rows in taken:
        if tenant == "big":
            big += rows
        else:
            small += rows
        if big < 8 and small < 8:
            assert abs(big - small) <= 4


def test_taking_advances_virtual_time_so_a_returning_tenant_has_no_hoarded_credit() -> None:
    queue: FairQueue[Item] = FairQueue()
    first = [Item("a") for _ in range(5)]
    for item in first:
        queue.push(item)
    queue.take(first[:4])
    queue.push(Item("b"))
    queue.push(Item("b"))
    # b was away while a's four ran: it gets no credit for that time (it does not run both
    # of its requests before a's last one), and no penalty (it goes next).
    assert _order(queue) == ["b", "a", "b"]
    assert len(queue) == 3 and queue.tenants == 2


def test_a_removed_request_gives_its_share_back() -> None:
    queue: FairQueue[Item] = FairQueue()
    mine = [Item("a") for _ in range(3)]
    for item in mine:
        queue.push(item)
    other = Item("b")
    queue.push(other)
    assert _order(queue) == ["a", "b", "a", "a"]
    assert queue.remove(mine[0]) and not queue.remove(mine[0])
    # a's later requests moved up: a cancelled request is not counted against its tenant.
    assert _order(queue) == ["a", "b", "a"]
    assert queue.queued_rows("a") == 2 and len(queue) == 3
    for item in list(queue):
        queue.remove(item)
    assert len(queue) == 0 and queue.tenants == 0 and queue.peek() is None


def test_full_queue_displaces_the_heaviest_tenant_first_and_never_ping_pongs() -> None:
    queue: FairQueue[Item] = FairQueue()
    heavy = [Item("heavy") for _ in range(6)]
    for item in heavy:
        queue.push(item)
    queue.push(Item("light"))
    assert queue.displaceable("light", 1) is heavy[-1]  # the heavy tenant's newest
    assert queue.displaceable("newcomer", 1) is heavy[-1]
    assert queue.displaceable("heavy", 1) is None  # the heaviest is refused itself
    even: FairQueue[Item] = FairQueue()
    for tenant in ("a", "b", "a", "b"):
        even.push(Item(tenant))
    assert even.displaceable("a", 1) is None and even.displaceable("b", 1) is None


# -- the scheduler ----------------------------------------------------------------------------


class Recorder(Runtime):
    """Sleeps per call and records which tenants' rows were in each call (by input value)."""

    def __init__(self, delay: float) -> None:
        super().__init__(1)
        self.delay = delay
        self.calls: list[list[int]] = []
        self._lock = threading.Lock()

    def load(self, path: object, manifest: Manifest) -> None:  # type: ignore[override]
        pass

    def predict(self, inputs: Tensors) -> Tensors:
        time.sleep(self.delay)
        with self._lock:
            self.calls.append([int(v) for v in inputs["x"][:, 0]])
        return {"y": inputs["x"]}


def _manifest(batch: int, max_queue: int) -> Manifest:
    data: dict[str, object] = {
        "runtime": "python",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
        "max_batch_size": batch,
        "max_queue_size": max_queue,
    }
    if batch:
        data["batching"] = {"max_delay_ms": 20}
    return Manifest.model_validate(data)


def _scheduler(runtime: Recorder, batch: int, max_queue: int) -> ModelScheduler:
    pool = InstancePool([runtime], 1, ThreadPoolExecutor(max_workers=2))
    return ModelScheduler(pool, _manifest(batch, max_queue), "m/1")


def _inputs(tenant_code: int) -> Tensors:
    return {"x": np.array([[tenant_code]], dtype=np.float32)}


def test_batches_are_filled_from_every_user_in_turn() -> None:
    runtime = Recorder(delay=0.05)

    async def scenario() -> None:
        scheduler = _scheduler(runtime, batch=4, max_queue=100)
        deadline = asyncio.get_running_loop().time() + 30
        # The heavy user (1) queues 12 requests before the light one (2) sends its 2.
        heavy = [
            asyncio.create_task(scheduler.submit(_inputs(1), 1, deadline, "heavy"))
            for _ in range(12)
        ]
        await asyncio.sleep(0)
        light = [
            asyncio.create_task(scheduler.submit(_inputs(2), 1, deadline, "light"))
            for _ in range(2)
        ]
        await asyncio.gather(*heavy, *light)

    asyncio.run(scenario())
    # The first call took what had arrived; the light user's two ride in the next batch, not
    # behind the heavy user's whole backlog.
    light_calls = [i for i, call in enumerate(runtime.calls) if 2 in call]
    assert light_calls and max(light_calls) <= 1, runtime.calls
    assert any(1 in call and 2 in call for call in runtime.calls), runtime.calls


def test_full_queue_refuses_the_heavy_user_and_admits_the_light_one() -> None:
    runtime = Recorder(delay=0.2)

    async def scenario() -> tuple[list[object], list[object]]:
        scheduler = _scheduler(runtime, batch=0, max_queue=4)
        deadline = asyncio.get_running_loop().time() + 30

        async def send(tenant: str, code: int) -> object:
            try:
                return await scheduler.submit(_inputs(code), 1, deadline, tenant)
            except QueueFull as exc:
                return exc

        heavy = []
        for _ in range(6):
            heavy.append(asyncio.create_task(send("heavy", 1)))
            await asyncio.sleep(0.005)
        # One runs, four wait, one was refused: the queue is full of the heavy user's requests.
        with pytest.raises(QueueFull):
            scheduler.check_room("heavy")
        scheduler.check_room("light")  # the light user may still come in
        light = [asyncio.create_task(send("light", 2)) for _ in range(2)]
        return list(await asyncio.gather(*heavy)), list(await asyncio.gather(*light))

    heavy, light = asyncio.run(scenario())
    assert not any(isinstance(outcome, QueueFull) for outcome in light), light
    refused = [outcome for outcome in heavy if isinstance(outcome, QueueFull)]
    assert len(refused) == 3  # one refused at the door, two displaced by the light user


def test_a_cancelled_request_leaves_the_queue_at_once() -> None:
    runtime = Recorder(delay=0.1)

    async def scenario() -> None:
        scheduler = _scheduler(runtime, batch=0, max_queue=10)
        deadline = asyncio.get_running_loop().time() + 30
        running = asyncio.create_task(scheduler.submit(_inputs(1), 1, deadline, "a"))
        await asyncio.sleep(0.02)
        waiting = [
            asyncio.create_task(scheduler.submit(_inputs(3), 1, deadline, "a")) for _ in range(3)
        ]
        await asyncio.sleep(0.01)
        assert scheduler.queue_depth == 3
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        assert scheduler.queue_depth == 0
        await running

    asyncio.run(scenario())
    assert runtime.calls == [[1]]  # the cancelled ones never ran
