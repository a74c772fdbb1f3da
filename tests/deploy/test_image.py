"""The image, built with podman from this checkout and run: the way an operator would use it."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelhost import container as limits
from tests.deploy.containers import Container
from tests.deploy.podman import ROOT, image_size, podman, runtime_args
from tests.storage.s3server import MotoServer
from tests.support.cli import create_user
from tests.support.databases import create_postgres_database, drop_postgres_database, postgres_url
from tests.support.models import write_python_model
from tests.support.waiting import eventually

MB = 1000**2
IRIS = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}
IRIS_SKLEARN = {
    "inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}
# The onnx,sklearn image, measured here: ~710 MB (Python and its venv on a minimal Debian 176 MB;
# numpy, scipy, scikit-learn, onnxruntime are most of the rest). The bound catches a build
# stage, pip cache or toolchain leaking in, with room for the dependencies to grow a little.
MAX_IMAGE_BYTES = 850 * MB


# Run inside the container: the readiness health check and one iris-onnx inference over gRPC.
GRPC_CHECK = """
import grpc, numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelhost.grpc.generated import grpc_predict_v2_pb2 as pb
with grpc.insecure_channel("127.0.0.1:8081") as channel:
    check = health_pb2_grpc.HealthStub(channel).Check
    status = check(health_pb2.HealthCheckRequest(service="readiness"), timeout=30).status
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
    rows = np.array([[5.1, 3.5, 1.4, 0.2]] * 3, dtype=np.float32)
    request = pb.ModelInferRequest(model_name="iris-onnx", raw_input_contents=[rows.tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[3, 4])
    infer = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    print(list(infer(request, timeout=60).outputs[0].shape))
"""


def infer(url: str, model: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = IRIS if model == "iris-onnx" else IRIS_SKLEARN
    return httpx.post(f"{url}/v2/models/{model}/infer", json=body, headers=headers, timeout=60)


def setosa(response: httpx.Response) -> bool:
    probabilities: list[float] = response.json()["outputs"][0]["data"]
    return probabilities.index(max(probabilities)) == 0


def test_hadolint_passes(deploy_tools: Path) -> None:
    result = subprocess.run(
        [str(deploy_tools / "hadolint"), "--config", str(ROOT / ".hadolint.yaml"), "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_serves_the_demo_models_as_non_root_sized_by_its_limits(
    image: str, demo_models: Path
) -> None:
    with Container(
        image,
        volumes={demo_models: "/models:ro"},
        env={"MODELHOST_AUTH": "disabled"},
        options=["--memory=2g", "--cpus=1"],
    ) as server:
        print(f"start to ready: {server.wait_ready():.1f}s")
        # Listening on 0.0.0.0:8080 inside (published here), models from the mounted folder.
        response = infer(server.url, "iris-onnx")
        assert response.status_code == 200, response.text
        assert setosa(response)
        label = infer(server.url, "iris-sklearn")
        assert label.status_code == 200, label.text
        assert label.json()["outputs"][0]["data"] == [0]  # setosa

        # gRPC on 8081 by default: the health service a gRPC probe calls, and V2 inference.
        assert server.exec("python", "-c", GRPC_CHECK).split() == ["SERVING", "[3,", "3]"]

        # The HEALTHCHECK (readiness) passes.
        assert podman("healthcheck", "run", server.name, check=False).returncode == 0
        inspected = json.loads(podman("image", "inspect", image).stdout)[0]
        health = inspected["Healthcheck"]["Test"]
        assert health[-2:] == ["-m", "modelhost.cli.probe"]

        # Not root: the server process (pid 1) runs as the image's user.
        status = server.exec("cat", "/proc/1/status")
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {"10001"}
        assert server.exec("id", "-u").strip() == "10001"

        # Sized by the container: the budget is the 2 GiB limit less the headroom, and the
        # model threads share the one CPU of the quota.
        budget = httpx.get(f"{server.url}/api/v1/cache").json()["budget_bytes"]
        expected = 2 * 1024**3 - limits.AUTO_HEADROOM_BYTES - 0.10 * 2 * 1024**3
        assert abs(budget - expected) <= 1
        cores = server.exec(
            "python", "-c", "from modelhost.settings import Settings; print(Settings().cores)"
        )
        assert cores.strip() == "1"


def test_image_size(image: str) -> None:
    size = image_size(image)
    print(f"image {image}: {size / MB:.0f} MB")
    assert size < MAX_IMAGE_BYTES


def test_a_model_from_s3_with_the_shared_postgresql(
    image: str, demo_models: Path, tmp_path: Path
) -> None:
    moto = MotoServer(tmp_path / "moto.log")
    moto.start()
    database = create_postgres_database()
    try:
        moto.create_bucket("models")
        database_url = postgres_url(database)
        env = {**moto.env(), "MODELHOST_DATABASE_URL": database_url}
        # Pushed from this machine's CLI: uploaded to S3 and registered in PostgreSQL.
        push = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "modelhost"), "models", "push",
             str(demo_models / "iris-onnx" / "1"), "--name", "iris-onnx",
             "--model-repository", "s3://models/repo"],
            env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert push.returncode == 0, push.stderr
        key = create_user("alice", "user", database_url)
        with Container(
            image,
            network="host",
            env={**env, "MODELHOST_MODEL_REPOSITORY": "s3://models/repo"},
        ) as server:
            assert infer(server.url, "iris-onnx").status_code == 401  # auth is on, from PG
            response = infer(server.url, "iris-onnx", {"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
            assert setosa(response)
            assert moto.gets("iris-onnx/1/model.onnx") >= 1  # fetched from the S3 server
            # Its usage record reached the shared database.
            usage = eventually(
                lambda: httpx.get(
                    f"{server.url}/api/v1/me/usage", headers={"Authorization": f"Bearer {key}"}
                ).json()["records"]
            )
            assert usage[0]["model"] == "iris-onnx"
    finally:
        moto.stop()
        drop_postgres_database(database)


def test_a_per_model_deployment_refuses_other_models(image: str, demo_models: Path) -> None:
    with Container(
        image,
        volumes={demo_models: "/models:ro"},
        env={"MODELHOST_AUTH": "disabled", "MODELHOST_MODELS": "iris-onnx"},
    ) as server:
        assert setosa(infer(server.url, "iris-onnx"))
        refused = infer(server.url, "iris-sklearn")
        assert refused.status_code == 404
        assert refused.json()["error"].endswith("it serves iris-onnx")


SLOW = """
import time

class Model:
    def load(self, path):
        pass

    def predict(self, inputs):
        time.sleep(4)
        return {"y": inputs["x"]}
"""


def test_sigterm_drains_requests_in_flight(image: str, tmp_path: Path) -> None:
    root = tmp_path / "models"
    manifest: dict[str, Any] = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
    }
    write_python_model(root, "slow", SLOW, manifest)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [7.0]}]}
    with Container(
        image,
        volumes={root: "/models:ro"},
        env={"MODELHOST_AUTH": "disabled", "MODELHOST_SHUTDOWN_GRACE_SECONDS": "20"},
    ) as server:
        results: list[httpx.Response] = []
        flight = threading.Thread(
            target=lambda: results.append(
                httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=60)
            )
        )
        flight.start()
        eventually(lambda: 'modelhost_requests_in_flight 1.0' in httpx.get(
            f"{server.url}/metrics").text, timeout=30)  # fmt: skip
        signalled = time.monotonic()
        podman("kill", "--signal=TERM", server.name)
        # Draining: not ready, new work refused at once, the request in flight finishes.
        eventually(lambda: httpx.get(f"{server.url}/v2/health/ready").status_code == 503, timeout=5)
        refused = httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=10)
        assert refused.status_code == 503
        flight.join(30)
        assert results and results[0].status_code == 200, results
        assert results[0].json()["outputs"][0]["data"] == [7.0]
        podman("wait", server.name, timeout=30)
        assert time.monotonic() - signalled < 20
        assert server.exit_code() == 0, server.logs()


def test_a_baked_model_answers_without_its_repository(baked_image: str) -> None:
    with Container(
        baked_image,
        env={
            "MODELHOST_AUTH": "disabled",
            # A repository nobody can reach: only the baked version can answer.
            "MODELHOST_MODEL_REPOSITORY": "s3://unreachable/models",
            "MODELHOST_S3_ENDPOINT": "http://127.0.0.1:9",
            "AWS_ACCESS_KEY_ID": "none",
            "AWS_SECRET_ACCESS_KEY": "none",
        },
    ) as server:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.5, 2.5]}]}
        response = httpx.post(f"{server.url}/v2/models/echo/infer", json=body, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [1.5, 2.5]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["--help"]])
def test_the_entry_point_runs_other_commands(image: str, command: list[str]) -> None:
    # The migration Job runs `db upgrade` with the same image (here on its default SQLite file).
    result = podman("run", "--rm", *runtime_args(), "--network=none", image, *command)
    assert result.returncode == 0
