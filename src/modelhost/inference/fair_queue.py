"""A model's queue, shared fairly between the users sending to it (start-time fair queueing).

Each tenant (a user: see :func:`modelhost.inference.service.tenant_of`) has its own FIFO lane.
A request is tagged when it arrives with a virtual *start*: the later of the queue's virtual time
and the *finish* of the tenant's previous queued request; its finish is its start plus its rows.
Requests are taken lowest start first, so:

- while several tenants are backlogged each gets the same share of rows, however many more
  requests one of them sends (a tenant sending 10× more only lengthens its own lane);
- a tenant that was away starts at the current virtual time: it neither hoards credit for the
  time it was idle nor waits behind the others' backlog;
- a batch is filled in tag order, so it holds requests of every backlogged tenant.

A request that leaves before it runs (its client went away, its deadline passed, it was shed)
gives its share back: the later requests of its tenant move up by its rows.

When the queue is full, an arriving request may displace the newest request of the tenant that
holds the most rows, provided that tenant holds more than the arriving one's would: the heavy
user is refused first (:meth:`FairQueue.displaceable`).

Not thread-safe: used on the event loop only, with no await between a check and its change.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import deque
from collections.abc import Hashable, Iterator
from typing import Generic, Protocol, TypeVar


class Queued(Protocol):
    """What the queue needs of an item: whose it is, its size, and room for its tag."""

    tenant: Hashable
    rows: int
    start: float  # virtual start tag, set by the queue
    seq: int  # arrival order, set by the queue: breaks ties between equal tags
    queued: bool  # set by the queue: still waiting in it


Item = TypeVar("Item", bound=Queued)


class _Lane(Generic[Item]):
    __slots__ = ("items", "finish", "rows")

    def __init__(self) -> None:
        self.items: deque[Item] = deque()
        self.finish = 0.0  # finish tag of the newest queued item
        self.rows = 0  # rows queued


class FairQueue(Generic[Item]):
    """Per-tenant FIFO lanes served in virtual-start order."""

    def __init__(self) -> None:
        self._lanes: dict[Hashable, _Lane[Item]] = {}
        self._virtual_time = 0.0
        self._count = 0
        self._seq = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    @property
    def tenants(self) -> int:
        """How many tenants have requests waiting."""
        return len(self._lanes)

    def push(self, item: Item) -> None:
        """Queue ``item`` at the end of its tenant's lane, tagged with its fair start."""
        lane = self._lanes.get(item.tenant)
        if lane is None:
            lane = self._lanes[item.tenant] = _Lane()
            start = self._virtual_time
        else:
            start = max(self._virtual_time, lane.finish)
        item.start, item.seq, item.queued = start, self._seq, True
        self._seq += 1
        lane.items.append(item)
        lane.finish = start + item.rows
        lane.rows += item.rows
        self._count += 1

    def peek(self) -> Item | None:
        """The item that would be taken next (lowest start tag), without taking it."""
        heads = [lane.items[0] for lane in self._lanes.values()]
        return min(heads, key=_order) if heads else None

    def __iter__(self) -> Iterator[Item]:
        """Every queued item in the order they would be taken."""
        lanes = [lane.items for lane in self._lanes.values()]
        if len(lanes) == 1:
            return iter(lanes[0])
        return heapq.merge(*lanes, key=_order)

    def take(self, items: list[Item]) -> None:
        """Remove ``items``, taken to run: the queue's virtual time moves up to their tags."""
        for item in items:
            lane = self._lanes[item.tenant]
            if lane.items[0] is item:
                lane.items.popleft()
            else:  # a batch may take an item past one it skipped (another shape)
                lane.items.remove(item)
            lane.rows -= item.rows
            item.queued = False
            self._count -= 1
            self._virtual_time = max(self._virtual_time, item.start)
            if not lane.items:
                del self._lanes[item.tenant]

    def remove(self, item: Item) -> bool:
        """Remove ``item``, which will not run: its tenant's later items move up by its share.

        Returns False if it was no longer queued (taken or removed already).
        """
        if not item.queued:
            return False
        lane = self._lanes[item.tenant]
        items = lane.items
        index = items.index(item)
        del items[index]
        for later in itertools.islice(items, index, None):
            later.start -= item.rows
        lane.finish -= item.rows
        lane.rows -= item.rows
        item.queued = False
        self._count -= 1
        if not items:
            del self._lanes[item.tenant]
        return True

    def ahead_of(self, tenant: Hashable) -> int:
        """How many queued items would be taken before a new one from ``tenant``."""
        lane = self._lanes.get(tenant)
        start = self._virtual_time if lane is None else max(self._virtual_time, lane.finish)
        ahead = 0
        for other in self._lanes.values():
            items = other.items
            if items[-1].start <= start:
                ahead += len(items)
            else:  # a lane's tags only grow: count its items tagged at or before ours
                ahead += bisect.bisect_right(items, start, key=_start)
        return ahead

    def displaceable(self, tenant: Hashable, rows: int) -> Item | None:
        """The item a new one of ``rows`` from ``tenant`` may displace from a full queue: the
        newest of the tenant holding the most rows, if that tenant holds more than ``tenant``
        would with the new one; None when ``tenant`` must be refused instead (so two tenants
        with equal shares never displace each other back and forth)."""
        if not self._lanes:
            return None
        heaviest_tenant, heaviest = max(self._lanes.items(), key=lambda pair: pair[1].rows)
        own = self._lanes.get(tenant)
        own_rows = own.rows if own is not None else 0
        if heaviest_tenant == tenant or heaviest.rows <= own_rows + rows:
            return None
        return heaviest.items[-1]

    def queued_rows(self, tenant: Hashable) -> int:
        lane = self._lanes.get(tenant)
        return lane.rows if lane is not None else 0


def _order(item: Queued) -> tuple[float, int]:
    return item.start, item.seq


def _start(item: Queued) -> float:
    return item.start
