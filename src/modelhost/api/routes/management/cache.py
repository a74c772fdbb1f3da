"""``GET /api/v1/cache``: the model cache's own accounting, for operators and tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.deps import principal_of
from modelhost.api.responses import json_response
from modelhost.cache.memory import process_rss
from modelhost.cache.snapshot import CacheSnapshot
from modelhost.inference.service import QueueSnapshot


def routes(
    cache: Callable[[], CacheSnapshot], queues: Callable[[], list[QueueSnapshot]]
) -> list[Route]:
    """``cache`` and ``queues`` say how things are now (the cache's and the data plane's)."""

    async def cache_state(request: Request) -> Response:
        principal_of(request).require_admin()
        snapshot = cache()
        by_model = {
            (queue.name, queue.version): {
                "queue_depth": queue.depth,
                "batches": queue.batches,
                "requests": queue.requests,
                "expired": queue.expired,
                "rejected": queue.rejected,
            }
            for queue in queues()
        }
        models = [
            {
                "name": model.name,
                "version": str(model.version),
                "state": model.state.value,
                "reason": model.reason,
                "footprint_bytes": model.footprint_bytes,
                "measured_bytes": model.measured_bytes,
                "leases": model.leases,
                "pinned": model.pinned,
                "scheduler": by_model.get((model.name, model.version)),
            }
            for model in snapshot.models
        ]
        return json_response(
            {
                "budget_bytes": snapshot.budget_bytes,
                "used_bytes": snapshot.used_bytes,
                "freeing_bytes": snapshot.freeing_bytes,
                "reserved_bytes": snapshot.reserved_bytes,
                "process_rss_bytes": process_rss(),
                "stats": asdict(snapshot.stats),
                "models": models,
            }
        )

    return [Route("/api/v1/cache", cache_state, methods=["GET"])]
