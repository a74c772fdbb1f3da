"""``GET /api/v1/cache``: the model cache's own accounting, for operators and tests."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelhost.api.deps import principal_of
from modelhost.api.requests import services_of
from modelhost.api.responses import json_response
from modelhost.cache.memory import process_rss


async def cache_state(request: Request) -> Response:
    principal_of(request).require_admin()
    services = services_of(request)
    cache = services.cache
    queues = {
        model.ref.key: {
            "queue_depth": scheduler.queue_depth,
            "batches": scheduler.stats.batches,
            "requests": scheduler.stats.requests,
            "expired": scheduler.stats.expired,
            "rejected": scheduler.stats.rejected,
        }
        for model, scheduler in services.inference.schedulers()
    }
    models = [
        {
            "name": entry.name,
            "version": str(entry.version),
            "state": entry.state.value,
            "reason": entry.reason,
            "footprint_bytes": entry.footprint,
            "measured_bytes": entry.known_size,
            "leases": entry.leases,
            "pinned": entry.pinned,
            "scheduler": queues.get(entry.ref.key),
        }
        for entry in cache.entries()
    ]
    return json_response(
        {
            "budget_bytes": cache.budget,
            "used_bytes": cache.used_bytes,
            "freeing_bytes": cache.freeing_bytes,
            "reserved_bytes": cache.reserved_bytes,
            "process_rss_bytes": process_rss(),
            "stats": asdict(cache.stats),
            "models": models,
        }
    )


routes = [Route("/api/v1/cache", cache_state, methods=["GET"])]
