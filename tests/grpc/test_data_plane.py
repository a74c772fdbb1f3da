"""gRPC calls go through REST's data plane: its keys and roles, its deadlines and queues, its
metrics and usage records, with REST's errors as gRPC status codes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as tc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.grpc.conftest import GrpcServer
from tests.grpc.models import calls
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def triton(grpc_server: GrpcServer) -> Iterator[tc.InferenceServerClient]:
    client = tc.InferenceServerClient(grpc_server.address)
    yield client
    client.close()


def iris() -> list[tc.InferInput]:
    item = tc.InferInput("input", [1, 4], "FP32")
    item.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
    return [item]


def slow_input(value: float) -> list[tc.InferInput]:
    item = tc.InferInput("x", [1], "FP32")
    item.set_data_from_numpy(np.array([value], dtype=np.float32))
    return [item]


def status_of(error: InferenceServerException) -> str:
    return str(error.status()).removeprefix("StatusCode.")


def test_keys_and_roles(triton: tc.InferenceServerClient, grpc_server: GrpcServer) -> None:
    admin, user = dict(grpc_server.metadata()), dict(grpc_server.metadata(grpc_server.user_key))
    # Probes carry no key and need none.
    assert triton.is_server_live() and triton.is_server_ready()
    with grpc.insecure_channel(grpc_server.address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        for service in ("", "readiness"):
            answer = check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    # No key, a malformed one, an unknown one: UNAUTHENTICATED, with REST's messages.
    for headers, message in (
        ({}, "an API key is required"),
        ({"authorization": "Basic abc"}, "use Authorization: Bearer <key>"),
        ({"authorization": "Bearer mh_000000000000_nope"}, "not valid"),
    ):
        for call in (
            lambda h: triton.infer("iris-onnx", iris(), headers=h),
            lambda h: triton.get_model_metadata("iris-onnx", headers=h),
            lambda h: triton.get_model_repository_index(headers=h),
        ):
            with pytest.raises(InferenceServerException, match=message) as info:
                call(headers)
            assert status_of(info.value) == "UNAUTHENTICATED"
    # A user's key infers; the admin RPCs are PERMISSION_DENIED to it.
    assert triton.infer("iris-onnx", iris(), headers=user).as_numpy("probabilities") is not None
    for call in (
        lambda: triton.load_model("iris-onnx", headers=user),
        lambda: triton.unload_model("iris-onnx", headers=user),
    ):
        with pytest.raises(InferenceServerException, match="admin") as info:
            call()
        assert status_of(info.value) == "PERMISSION_DENIED"
    assert triton.is_model_ready("iris-onnx", headers=admin)  # the denied unload did nothing


def test_unknown_model_is_not_found(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    with pytest.raises(InferenceServerException, match="no-such-model") as info:
        triton.infer("no-such-model", iris(), headers=dict(grpc_server.metadata()))
    assert status_of(info.value) == "NOT_FOUND"


def test_deadline_of_the_call_is_the_requests(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    """A call whose gRPC deadline passes while it waits in the model's queue is dropped before
    the model runs it, and answered (and counted) as DEADLINE_EXCEEDED."""
    headers = dict(grpc_server.metadata())
    model = "slow-deadline"
    triton.load_model(model, headers=headers)
    first = threading.Thread(
        target=lambda: triton.infer(model, slow_input(1.0), headers=headers), daemon=True
    )
    first.start()  # holds the model's only instance for 2 s
    eventually(lambda: len(calls(grpc_server.models / model / "1")) == 1, timeout=10)
    started = time.monotonic()
    with pytest.raises(InferenceServerException) as info:
        triton.infer(model, slow_input(2.0), headers=headers, client_timeout=0.3)
    assert status_of(info.value) == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 1.5  # at its deadline, not after the first call
    first.join(10)
    time.sleep(1.0)  # the instance is free again: a request it had kept would run now
    assert calls(grpc_server.models / model / "1") == [["1.0"]]

    def counted() -> bool:
        metrics = httpx.get(f"{grpc_server.url}/metrics", headers=grpc_server.headers()).text
        return f'endpoint="grpc",model="{model}",status="504",version="1"' in metrics

    eventually(counted, timeout=5)


def test_full_queue_is_unavailable(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    """max_queue_size 1 and one slow instance: of four calls at once, the ones that find the
    queue full are refused at once with UNAVAILABLE, saying why."""
    headers = dict(grpc_server.metadata())
    model = "slow-queue"
    triton.load_model(model, headers=headers)

    def call(value: float) -> str:
        try:
            triton.infer(model, slow_input(value), headers=headers, client_timeout=30)
        except InferenceServerException as exc:
            assert "max_queue_size" in str(exc.message()), exc.message()
            return status_of(exc)
        return "OK"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(call, [1.0, 2.0, 3.0, 4.0]))
    assert "OK" in outcomes and "UNAVAILABLE" in outcomes
    assert set(outcomes) == {"OK", "UNAVAILABLE"}


def test_metered_as_grpc(triton: tc.InferenceServerClient, grpc_server: GrpcServer) -> None:
    """Metrics and usage records say which protocol carried a request (endpoint "grpc")."""
    user_headers = dict(grpc_server.metadata(grpc_server.user_key))
    before = usage(grpc_server)
    triton.infer("iris-onnx", iris(), headers=user_headers)
    with pytest.raises(InferenceServerException):
        triton.infer("iris-onnx", iris()[:0], headers=user_headers)  # no inputs: 400

    def recorded() -> list[dict[str, object]]:
        return [r for r in usage(grpc_server) if r["id"] not in {b["id"] for b in before}]

    eventually(lambda: len(recorded()) == 2, timeout=10)
    statuses = sorted(record["status"] for record in recorded())  # type: ignore[type-var]
    assert statuses == [200, 400]
    ok = next(record for record in recorded() if record["status"] == 200)
    assert ok["model"] == "iris-onnx" and ok["version"] == 1
    assert int(ok["bytes_in"]) > 16 and int(ok["bytes_out"]) > 12  # type: ignore[call-overload]
    metrics = httpx.get(f"{grpc_server.url}/metrics", headers=grpc_server.headers()).text
    assert 'endpoint="grpc",model="iris-onnx",status="200",version="1"' in metrics


def usage(grpc_server: GrpcServer) -> list[dict[str, object]]:
    answer = httpx.get(
        f"{grpc_server.url}/api/v1/usage",
        params={"user": "grpc-user"},
        headers=grpc_server.headers(),
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, object]] = answer.json()["records"]
    return items
