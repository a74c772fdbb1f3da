"""The KServe SDK's gRPC client (``kserve.InferenceGRPCClient`` and the SDK's generated stub)
against modelhost's gRPC port, from the SDK's own virtualenv (tests/e2e/test_kserve_client.py)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.e2e.test_kserve_client import kserve_python
from tests.e2e.test_tritonclient import IRIS_LABELS, sample
from tests.grpc.conftest import GrpcServer
from tests.support.models import ALL_DATATYPES

IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def as_json(datatype: str, array: np.ndarray) -> dict[str, Any]:
    flat = array.reshape(-1).tolist()
    if datatype == "BYTES":
        flat = [base64.b64encode(item.encode()).decode() for item in flat]
    return {"datatype": datatype, "shape": list(array.shape), "data": flat}


def test_kserve_grpc_client(grpc_server: GrpcServer, tmp_path: Path) -> None:
    samples = {dt: as_json(dt, sample(dt)) for dt in ALL_DATATYPES}
    (tmp_path / "samples.json").write_text(json.dumps(samples))
    script = Path(__file__).with_name("kserve_grpc_script.py")
    result = subprocess.run(
        [
            str(kserve_python()),
            str(script),
            grpc_server.address,
            grpc_server.admin_key,
            grpc_server.user_key,
            str(tmp_path / "samples.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["live"] is True and seen["ready"] is True
    assert seen["server_metadata"]["name"] == "modelhost"
    assert seen["model_metadata"] == {
        "name": "iris-onnx",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [["input", "FP32", [-1, 4]]],
        "outputs": [["probabilities", "FP32", [-1, 3]]],
    }
    assert seen["unloaded"] == ["iris-onnx", True] and seen["ready_after_unload"] is False
    assert seen["loaded"] == ["iris-onnx", True] and seen["ready_after_load"] is True

    over_rest = httpx.post(
        f"{grpc_server.url}/v2/models/iris-onnx/infer",
        json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4], "data": IRIS}]},
        headers=grpc_server.headers(),
    ).json()["outputs"][0]["data"]
    for binary in (True, False):
        got = seen[f"iris binary={binary}"]
        assert got["id"] == "k" and got["raw"] is binary  # the answer in the client's form
        assert got["datatype"] == "FP32" and got["shape"] == [2, 3]
        np.testing.assert_array_equal(
            np.array(got["data"], dtype=np.float32), np.array(over_rest, dtype=np.float32)
        )
    assert list(seen["requested"]) == ["label"]
    assert seen["requested"]["label"]["data"] == IRIS_LABELS[:2]

    for form, datatypes in (
        ("identity raw", ALL_DATATYPES),
        ("identity typed", [dt for dt in ALL_DATATYPES if dt != "FP16"]),
    ):
        assert sorted(seen[form]) == sorted(datatypes), form
        for dt in datatypes:
            assert seen[form][dt] == samples[dt], f"{form} {dt}"

    assert seen["no key"]["code"] == "UNAUTHENTICATED"
    assert "API key is required" in seen["no key"]["details"]
    assert seen["user on admin rpc"]["code"] == "PERMISSION_DENIED"
    assert seen["unknown model"]["code"] == "NOT_FOUND"
    assert "no-such-model" in seen["unknown model"]["details"]
    assert seen["deadline"]["code"] == "DEADLINE_EXCEEDED"
    assert "OK" in seen["full queue"] and "UNAVAILABLE" in seen["full queue"]
    assert set(seen["full queue"]) == {"OK", "UNAVAILABLE"}
    assert all("max_queue_size" in details for details in seen["full queue details"])
