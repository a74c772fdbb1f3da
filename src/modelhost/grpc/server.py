"""The gRPC server of a modelhost process: the V2 inference service and the health service on
their own port, in the same event loop as REST and over the same components."""

from __future__ import annotations

import logging

from grpc import aio

from modelhost.auth.authenticator import Authenticator
from modelhost.catalog.model_catalog import ModelCatalog
from modelhost.grpc import health, servicer
from modelhost.grpc.calls import CallGuard
from modelhost.grpc.health import HealthServicer
from modelhost.grpc.servicer import InferenceServicer
from modelhost.inference.repository_extension import RepositoryService
from modelhost.inference.service import InferenceService
from modelhost.lifecycle import Lifecycle
from modelhost.observability.metering import Metering

log = logging.getLogger(__name__)

# Connections nobody used for this long are closed (each holds a descriptor and buffers).
IDLE_CONNECTION_MS = 300_000


async def start_grpc_server(
    *,
    host: str,
    port: int,
    max_message_bytes: int,
    inference: InferenceService,
    repository: RepositoryService,
    catalog: ModelCatalog,
    lifecycle: Lifecycle,
    authenticator: Authenticator | None,
    metering: Metering,
) -> tuple[aio.Server, int]:
    """Start serving on ``host:port`` (0: any free port); returns the server and its port.

    A message bigger than ``max_message_bytes`` (REST's body limit) is refused by gRPC itself
    with RESOURCE_EXHAUSTED before it is read whole.
    """
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", -1),
            # Fail loudly if another process holds the port, instead of sharing it.
            ("grpc.so_reuseport", 0),
            ("grpc.max_connection_idle_ms", IDLE_CONNECTION_MS),
        ]
    )
    guard = CallGuard(servicer.SERVICE, lifecycle, authenticator)
    inference_servicer = InferenceServicer(
        inference=inference,
        repository=repository,
        catalog=catalog,
        lifecycle=lifecycle,
        guard=guard,
        metering=metering,
    )
    server.add_registered_method_handlers(servicer.SERVICE, inference_servicer.handlers())
    server.add_registered_method_handlers(health.SERVICE, HealthServicer(lifecycle).handlers())
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio raises when the address cannot be bound
        raise OSError(f"gRPC cannot listen on {address}: {exc}") from None
    await server.start()
    log.info("gRPC (V2 inference, health) on %s", address.rsplit(":", 1)[0] + f":{bound}")
    return server, bound
