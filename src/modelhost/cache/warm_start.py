"""Warm restart: a replica that starts loads, in the background, the models served most lately.

A rolling restart otherwise starts every pod cold: each new pod's first request for each hot
model waits for its load. At start the server asks the usage records which versions of the
models it serves answered the most requests in the last ``window`` (an hour by default) and
preloads them, busiest first, each only if it fits in the budget's free room (nothing is
evicted for a guess; a pinned model was loaded before). Readiness waits for this at most
MODELHOST_WARM_START_READY_WAIT_SECONDS (default 0: not at all); the loads go on after.

Whose records: every replica's, for the models this deployment serves. A pod's name does not
survive its restart (a Deployment's pods get new names; their IPs change too), so records
tagged with the pod that served them could not be matched to the pod that replaces it; and the
routing tier spreads a model over whichever replicas its hash and load bound pick at the time.
What survives is the deployment: MODELHOST_MODELS (a per-model deployment) or the whole
repository (a shared pool). In a shared pool each replica so preloads the hottest models of
the fleet that fit its budget: the ones the routing tier's bounded load spreads over several
replicas anyway, and the ones most likely to land on a new pod.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from modelhost.cache.model_cache import ModelCache
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.db.timestamps import utcnow
from modelhost.db.usage import UsageStore
from modelhost.errors import ModelhostError

log = logging.getLogger(__name__)


async def warm_start(
    usage: UsageStore, catalog: ModelCatalog, cache: ModelCache, *, window_seconds: float
) -> list[str]:
    """Preload the busiest versions of the last ``window_seconds``; returns the ones loaded."""
    names = frozenset(catalog.names())
    if not names:
        return []
    try:
        demand = await usage.busiest_versions(
            since=utcnow() - timedelta(seconds=window_seconds), models=names
        )
    except Exception as exc:  # the database away must not stop a replica from starting
        log.warning("warm start skipped: the usage records could not be read: %s", exc)
        return []
    loaded: list[str] = []
    for wanted in demand:
        label = f"{wanted.model}/{wanted.version}"
        try:
            ref = catalog.resolve(wanted.model, str(wanted.version))
        except ModelhostError:
            continue  # the version is gone from the registry since
        try:
            if await cache.preload(ref):
                loaded.append(label)
            else:
                log.info("warm start: %s (%d requests) does not fit", label, wanted.requests)
        except ModelhostError as exc:
            log.warning("warm start: %s did not load: %s", label, exc.message)
    log.info(
        "warm start: %d of the %d versions served in the last %gs are resident: %s",
        len(loaded),
        len(demand),
        window_seconds,
        ", ".join(loaded) or "none",
    )
    return loaded
