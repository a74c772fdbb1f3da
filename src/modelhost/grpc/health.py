"""The standard ``grpc.health.v1.Health`` service, for Kubernetes gRPC probes and meshes.

Service names: ``""`` (and ``liveness``) is SERVING while the process serves, as
``/v2/health/live``; ``readiness`` and ``inference.GRPCInferenceService`` are SERVING when the
server is ready for inference and NOT_SERVING while it starts or drains for shutdown, as
``/v2/health/ready``. Any other name is NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch), as the
health protocol says. No key is needed: probes carry none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2

from modelhost.lifecycle import Lifecycle

SERVICE = "grpc.health.v1.Health"
LIVENESS = frozenset({"", "liveness"})
READINESS = frozenset({"readiness", "inference.GRPCInferenceService"})
_SERVING: int = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
_SERVICE_UNKNOWN: int = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
# How often Watch looks for a change to send.
WATCH_INTERVAL = 1.0


class HealthServicer:
    """Answers from the server's lifecycle, read at each call (nothing to keep in step)."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        request, response = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        return {
            "Check": grpc.unary_unary_rpc_method_handler(
                self.check,
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            ),
            "Watch": grpc.unary_stream_rpc_method_handler(
                self.watch,
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            ),
        }

    def status(self, service: str) -> int:
        if service in LIVENESS:
            return _SERVING
        if service in READINESS:
            ready = self._lifecycle.ready and not self._lifecycle.draining
            return _SERVING if ready else _NOT_SERVING
        return _SERVICE_UNKNOWN

    async def check(
        self, request: health_pb2.HealthCheckRequest, context: aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        status = self.status(request.service)
        if status == _SERVICE_UNKNOWN:
            known = sorted(LIVENESS | READINESS)
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}; one of {known}"
            )
        return health_pb2.HealthCheckResponse(status=status)

    async def watch(
        self, request: health_pb2.HealthCheckRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then each change, until the client hangs up or the server stops."""
        sent: int | None = None
        while True:
            status = self.status(request.service)
            if status != sent:
                yield health_pb2.HealthCheckResponse(status=status)
                sent = status
            await asyncio.sleep(WATCH_INTERVAL)
