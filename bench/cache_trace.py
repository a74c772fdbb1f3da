"""The cache-policy benchmark's workload and its offline references (no server involved).

* :func:`catalog`: 20 models whose sizes span 20 MB–1 GB and whose load times span 0.1–10 s,
  both geometric, paired by a fixed shuffle (a big model is not always a slow one: weights
  that memory-map load fast, a model that compiles or warms up loads slowly whatever its size).
* :func:`zipf_trace`: requests whose model popularity is Zipf-distributed (s ≈ 1.1), with the
  ranking reshuffled halfway through (what was hot goes cold, and the other way round).
* :func:`simulate`: a cache of ``budget`` bytes replaying a trace under one of the server's own
  eviction policies (:mod:`modelhost.cache.eviction`), one request at a time.
* :func:`belady`: Belady's offline rule, evict what is next needed farthest in the future.
* :func:`offline_optimum`: the least total loading time any policy could achieve on the trace,
  solved exactly as an integer program (FOO's interval formulation, Berger et al. 2018): one
  keep-or-drop choice per gap between two requests for a model, the bytes kept at every
  request within the budget. With unequal sizes and costs Belady's rule is not optimal; this is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix

from modelhost.cache.eviction import CostAwarePolicy, EvictionPolicy, LruPolicy

MB = 1_000_000


@dataclass(frozen=True)
class BenchModel:
    name: str
    size: int  # bytes it holds once loaded
    load_seconds: float


@dataclass
class Outcome:
    """What a policy cost on a trace."""

    hits: int = 0
    loads: int = 0
    load_seconds: float = 0.0
    loaded_bytes: int = 0

    def hit_rate(self, requests: int) -> float:
        return self.hits / requests if requests else 0.0


def catalog(count: int = 20, seed: int = 14) -> list[BenchModel]:
    """``count`` models: sizes 20 MB..1 GB and load times 0.1..10 s, geometric, shuffled pairs."""
    sizes = np.geomspace(20 * MB, 1000 * MB, count)
    seconds = list(np.geomspace(0.1, 10.0, count))
    random.Random(seed).shuffle(seconds)
    return [
        BenchModel(f"m{i:02d}", int(size), round(float(load), 3))
        for i, (size, load) in enumerate(zip(sizes, seconds, strict=True))
    ]


def zipf_trace(models: int, requests: int, s: float = 1.1, seed: int = 14) -> list[int]:
    """Model indexes, Zipf(``s``) over a random ranking that is redrawn halfway through."""
    rng = random.Random(seed)
    weights = [1.0 / rank**s for rank in range(1, models + 1)]
    trace: list[int] = []
    for half in (requests // 2, requests - requests // 2):
        ranking = list(range(models))
        rng.shuffle(ranking)
        trace.extend(rng.choices(ranking, weights=weights, k=half))
    return trace


def simulate(
    policy_name: str,
    trace: Sequence[int],
    models: Sequence[BenchModel],
    budget: int,
    seconds_per_hit: float = 0.05,
) -> Outcome:
    """Replay ``trace`` through a cache of ``budget`` bytes that evicts in the order of the
    server's policy ``policy_name``, on a virtual clock (a hit takes ``seconds_per_hit``, a miss
    its model's load time too)."""
    now = 0.0
    policy: EvictionPolicy[int] = (
        CostAwarePolicy(clock=lambda: now) if policy_name == CostAwarePolicy.name else LruPolicy()
    )
    resident: set[int] = set()
    used = 0
    outcome = Outcome()
    for index in trace:
        model = models[index]
        now += seconds_per_hit
        if index in resident:
            outcome.hits += 1
            policy.used(index)
            continue
        now += model.load_seconds
        for victim in policy.eviction_order():
            if used + model.size <= budget:
                break
            resident.discard(victim)  # type: ignore[arg-type]
            used -= models[victim].size  # type: ignore[index]
            policy.evicted(victim)
        resident.add(index)
        used += model.size
        policy.admitted(index, model.size, model.load_seconds)
        policy.used(index)
        _charge(outcome, model)
    return outcome


def belady(trace: Sequence[int], models: Sequence[BenchModel], budget: int) -> Outcome:
    """Belady's rule: on a miss, evict the models next needed farthest ahead (never: first)."""
    next_use = _next_uses(trace)
    upcoming: dict[int, int] = {}
    resident: set[int] = set()
    used = 0
    outcome = Outcome()
    for t, index in enumerate(trace):
        upcoming[index] = next_use[t]
        if index in resident:
            outcome.hits += 1
            continue
        model = models[index]
        for victim in sorted(resident, key=lambda m: -upcoming[m]):
            if used + model.size <= budget:
                break
            resident.discard(victim)
            used -= models[victim].size
        resident.add(index)
        used += model.size
        _charge(outcome, model)
    return outcome


def offline_optimum(trace: Sequence[int], models: Sequence[BenchModel], budget: int) -> Outcome:
    """The fewest loading seconds any policy can spend on ``trace`` (exact integer program).

    Variable k_j = 1 keeps a model resident through gap j (from one of its requests to its
    next); dropping it costs one load at the gap's end. At each request t the requested model
    plus every model kept through a gap spanning t must fit the budget.
    """
    next_use = _next_uses(trace)
    gaps = [(t, next_use[t]) for t in range(len(trace)) if next_use[t] < len(trace)]
    cost = np.array([models[trace[end]].load_seconds for _, end in gaps])
    rows = lil_matrix((len(trace), len(gaps)))
    for j, (start, end) in enumerate(gaps):
        size = models[trace[start]].size
        for t in range(start + 1, end):  # strictly inside: other models' requests
            rows[t, j] = size
    room = np.array([budget - models[index].size for index in trace], dtype=float)
    solved = milp(
        -cost,  # maximize the load seconds saved
        constraints=LinearConstraint(rows.tocsr(), -np.inf, room),
        integrality=np.ones(len(gaps)),
        bounds=Bounds(0, 1),
        options={"time_limit": 120},
    )
    if solved.x is None:
        raise RuntimeError(f"the offline optimum was not found: {solved.message}")
    kept = {gaps[j][1] for j in range(len(gaps)) if solved.x[j] > 0.5}
    outcome = Outcome()
    for t, index in enumerate(trace):
        if t in kept:
            outcome.hits += 1
        else:
            _charge(outcome, models[index])
    return outcome


def _next_uses(trace: Sequence[int]) -> list[int]:
    """For each position, where the same model is requested next (len(trace): never)."""
    following: dict[int, int] = {}
    result = [len(trace)] * len(trace)
    for t in range(len(trace) - 1, -1, -1):
        result[t] = following.get(trace[t], len(trace))
        following[trace[t]] = t
    return result


def _charge(outcome: Outcome, model: BenchModel) -> None:
    outcome.loads += 1
    outcome.load_seconds += model.load_seconds
    outcome.loaded_bytes += model.size
