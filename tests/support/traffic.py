"""Closed-loop HTTP traffic in a background thread, and what it measured.

Each worker sends one inference request at a time, cycling through its own list of models, so
a model with one worker never has more than one request in flight. Every answer is kept with
its start time, latency, status (0 for a transport error) and the replica that served it (the
router's ``X-Served-By`` header).
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}


@dataclass(frozen=True)
class Outcome:
    model: str
    started: float  # time.monotonic()
    seconds: float
    status: int
    served_by: str | None  # the replica; for a request with no answer (status 0), why


@dataclass
class Window:
    """The outcomes of requests that started in [start, end)."""

    outcomes: list[Outcome]
    seconds: float
    per_model: dict[str, Counter[str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for outcome in self.outcomes:
            self.per_model.setdefault(outcome.model, Counter())[outcome.served_by] += 1

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 200]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]

    def rate(self, model: str | None = None) -> float:
        ok = [o for o in self.ok if model is None or o.model == model]
        return len(ok) / self.seconds

    def percentile(self, q: float) -> float:
        latencies = sorted(o.seconds for o in self.ok)
        if len(latencies) < 2:
            return latencies[0] if latencies else 0.0
        return statistics.quantiles(latencies, n=100, method="inclusive")[int(q) - 1]

    def home(self, model: str) -> str | None:
        """The replica that served most of this model's requests."""
        served = self.per_model.get(model)
        return served.most_common(1)[0][0] if served else None


class Traffic:
    """Workers sending requests through ``url`` until :meth:`stop`, from a process of their own:
    what the test does meanwhile (reading metrics, killing a replica) never stalls them."""

    def __init__(
        self, url: str, workers: list[list[str]], *, body: dict[str, Any] | None = None
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._stopping = context.Event()
        self._results = context.Queue()
        self._ready = context.Event()
        self._process = context.Process(
            target=_generate,
            args=(url, workers, body or X, self._ready, self._stopping, self._results),
            daemon=True,
        )
        self.outcomes: list[Outcome] = []

    def start(self) -> Traffic:
        self._process.start()
        if not self._ready.wait(30):
            raise TimeoutError("the traffic process did not start")
        return self

    def stop(self) -> list[Outcome]:
        self._stopping.set()
        rows = self._results.get(timeout=120)
        self._process.join(30)
        self.outcomes = [Outcome(*row) for row in rows]
        return self.outcomes

    def window(self, start: float, end: float) -> Window:
        """Outcomes of the requests that started in [start, end) (time.monotonic(), which the
        traffic process shares)."""
        chosen = [o for o in self.outcomes if start <= o.started < end]
        return Window(chosen, end - start)

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if not self.outcomes:
            self.stop()


def _generate(
    url: str,
    workers: list[list[str]],
    body: dict[str, Any],
    ready: Any,
    stopping: Any,
    results: Any,
) -> None:
    outcomes: list[tuple[str, float, float, int, str | None]] = []

    async def worker(client: httpx.AsyncClient, models: list[str]) -> None:
        for model in itertools.cycle(models):
            if stopping.is_set():
                return
            started = time.monotonic()
            try:
                response = await client.post(f"/v2/models/{model}/infer", json=body)
                status, served_by = response.status_code, response.headers.get("x-served-by")
            except httpx.TransportError as exc:
                status, served_by = 0, f"{type(exc).__name__}: {exc}"  # no answer: what broke
            outcomes.append((model, started, time.monotonic() - started, status, served_by))
            if status != 200:
                await asyncio.sleep(0.01)  # a failing front must not turn a worker into a spin

    async def main() -> None:
        limits = httpx.Limits(max_connections=len(workers) + 4)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            ready.set()
            await asyncio.gather(*(worker(client, models) for models in workers))

    asyncio.run(main())
    results.put(outcomes)
