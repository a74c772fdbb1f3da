"""REST and gRPC requests for one batched model share its batches, and each gets exactly what
it would get alone.

The recorder model logs the tags (column 0) of the rows of every call it runs: REST requests are
tagged 1..N, gRPC ones 1001..1000+N, so the log shows which calls mixed the protocols.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import numpy as np
import tritonclient.grpc as tc

from tests.grpc.conftest import GrpcServer
from tests.grpc.models import calls

MODEL = "recorder"
PER_PROTOCOL = 8
GRPC_TAGS = 1000


def row(tag: int) -> np.ndarray:
    """A request's input: its tag, then values that differ from tag to tag."""
    return np.array([[tag, 0.1 * tag, -0.05 * tag, 1.0]], dtype=np.float64)


def over_rest(server: GrpcServer, tag: int) -> tuple[np.ndarray, int]:
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [1, 4], "data": row(tag).ravel().tolist()}
        ]
    }
    answer = httpx.post(
        f"{server.url}/v2/models/{MODEL}/infer", json=body, headers=server.headers(), timeout=30
    )
    assert answer.status_code == 200, answer.text
    output = answer.json()["outputs"][0]
    return np.array(output["data"]).reshape(output["shape"]), int(answer.headers["x-batch-size"])


def over_grpc(
    client: tc.InferenceServerClient, server: GrpcServer, tag: int
) -> tuple[np.ndarray, int]:
    item = tc.InferInput("x", [1, 4], "FP64")
    item.set_data_from_numpy(row(tag))
    result = client.infer(MODEL, [item], headers=dict(server.metadata()))
    batch = result.get_response().parameters["batch_size"].int64_param
    return result.as_numpy("y"), batch


def test_rest_and_grpc_share_batches(grpc_server: GrpcServer) -> None:
    client = tc.InferenceServerClient(grpc_server.address)
    try:
        rest_tags = list(range(1, PER_PROTOCOL + 1))
        grpc_tags = [GRPC_TAGS + tag for tag in rest_tags]
        # Alone: one request at a time, each in a batch of its own.
        alone: dict[int, np.ndarray] = {}
        for tag in rest_tags:
            alone[tag], size = over_rest(grpc_server, tag)
            assert size == 1
        for tag in grpc_tags:
            alone[tag], size = over_grpc(client, grpc_server, tag)
            assert size == 1
        version_dir = grpc_server.models / MODEL / "1"
        calls_before = len(calls(version_dir))

        # Together: all at once, over both protocols (a few rounds, in case the machine is slow
        # to start the threads together).
        mixed: list[list[str]] = []
        for _ in range(3):
            results = send_together(
                [lambda t=tag: over_rest(grpc_server, t) for tag in rest_tags]
                + [lambda t=tag: over_grpc(client, grpc_server, t) for tag in grpc_tags],
                rest_tags + grpc_tags,
            )
            for tag, (output, _) in results.items():
                # Batched, the BLAS may round the last bit differently: nothing more.
                np.testing.assert_allclose(output, alone[tag], rtol=1e-12, atol=0)
            assert max(size for _, size in results.values()) > 1
            new_calls = calls(version_dir)[calls_before:]
            calls_before += len(new_calls)
            # Each request's reported batch size is the number of requests in its model call.
            call_size = {int(tag): len(call) for call in new_calls for tag in call}
            assert {tag: size for tag, (_, size) in results.items()} == call_size
            mixed = [c for c in new_calls if {int(t) > GRPC_TAGS for t in c} == {True, False}]
            if mixed:
                break
        assert mixed, "no model call held both REST and gRPC requests"
    finally:
        client.close()


def send_together(
    senders: list[Callable[[], tuple[np.ndarray, int]]], tags: list[int]
) -> dict[int, tuple[np.ndarray, int]]:
    barrier = threading.Barrier(len(senders))
    results: dict[int, tuple[np.ndarray, int]] = {}
    errors: list[BaseException] = []

    def run(tag: int, send: Callable[[], tuple[np.ndarray, int]]) -> None:
        barrier.wait()
        try:
            results[tag] = send()
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(tags, senders, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sorted(results) == sorted(tags)
    return results
