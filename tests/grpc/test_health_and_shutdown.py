"""The grpc.health.v1 service Kubernetes probes call, and SIGTERM with gRPC calls in flight:
readiness turns NOT_SERVING at once, new calls get UNAVAILABLE, calls in flight finish."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.grpc.models import calls, write_slow_model
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def slow_input() -> list[tc.InferInput]:
    item = tc.InferInput("x", [1], "FP32")
    item.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    return [item]


def test_health_service_and_graceful_shutdown(tmp_path: Path) -> None:
    version_dir = write_slow_model(tmp_path / "models", "slow", delay=1.0, max_queue_size=8)
    env = {"MODELHOST_SHUTDOWN_GRACE_SECONDS": "10"}
    server = ServerProcess(tmp_path / "models", tmp_path / "server.log", env=env, grpc=True)
    with server, grpc.insecure_channel(server.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        def check(service: str) -> int:
            request = health_pb2.HealthCheckRequest(service=service)
            status: int = health.Check(request, timeout=5).status
            return status

        for service in ("", "liveness", "readiness", "inference.GRPCInferenceService"):
            assert check(service) == SERVING, service
        with pytest.raises(grpc.RpcError) as info:
            check("no.such.Service")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        watched: list[int] = []
        watch = health.Watch(health_pb2.HealthCheckRequest(service="readiness"), timeout=30)

        def follow() -> None:
            try:
                for answer in watch:
                    watched.append(answer.status)
            except grpc.RpcError:
                pass  # the server went away, or the test cancelled the stream

        threading.Thread(target=follow, daemon=True).start()
        eventually(lambda: watched == [SERVING], timeout=5)

        client = tc.InferenceServerClient(server.grpc_address)
        outcome: list[object] = []
        in_flight = threading.Thread(
            target=lambda: outcome.append(client.infer("slow", slow_input()).as_numpy("y")),
            daemon=True,
        )
        in_flight.start()
        eventually(lambda: len(calls(version_dir)) == 1, timeout=15)  # the call is running
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.1)

        assert check("readiness") == NOT_SERVING and check("") == SERVING
        assert not client.is_server_ready() and client.is_server_live()
        with pytest.raises(InferenceServerException, match="shutting down") as refused:
            client.infer("slow", slow_input())
        assert "UNAVAILABLE" in str(refused.value.status())
        eventually(lambda: NOT_SERVING in watched, timeout=5)

        in_flight.join(15)
        assert len(outcome) == 1 and np.asarray(outcome[0]).tolist() == [2.0]
        assert server.process.wait(30) == 0
        watch.cancel()
        client.close()
    assert len(calls(version_dir)) == 1  # the refused call never ran
