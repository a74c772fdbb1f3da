"""End to end: the Open Inference Protocol as ``tritonclient.http`` speaks it, to a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as tc
from tritonclient.utils import InferenceServerException

from tests.support.models import ALL_DATATYPES, write_failing_model, write_identity_model
from tests.support.server import ServerProcess

# setosa, virginica, versicolor: the labels the fitted classifier gives these rows.
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
IRIS_LABELS = [0, 2, 1]
BINARY = pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])

MODELS = {
    "iris-onnx": (
        "onnxruntime_onnx",
        [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
    ),
    "iris-sklearn": (
        "sklearn",
        [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
        [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
        ],
    ),
}


def connect(server: ServerProcess) -> tc.InferenceServerClient:
    return tc.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=30.0)


@pytest.fixture
def triton(server: ServerProcess) -> Iterator[tc.InferenceServerClient]:
    client = connect(server)
    yield client
    client.close()


def tensor(name: str, array: np.ndarray, datatype: str, binary: bool) -> tc.InferInput:
    item = tc.InferInput(name, list(array.shape), datatype)
    item.set_data_from_numpy(array, binary_data=binary)
    return item


def sample(datatype: str) -> np.ndarray:
    """A [2, 3] array of ``datatype`` holding its extremes (and awkward strings for BYTES)."""
    if datatype == "BYTES":
        rows = [["héllo wörld", "", "日本語 🚀"], ["\x00nul", " ", "plain ascii"]]
        return np.array(rows, dtype=np.object_)
    if datatype == "BOOL":
        return np.array([[True, False, True], [False, True, False]])
    if datatype.startswith("FP"):
        dtype = np.dtype(f"float{datatype[2:]}")
        fi = np.finfo(dtype)
        return np.array([[fi.min, fi.max, 0.0], [fi.tiny, -1.5, fi.eps]], dtype=dtype)
    ii = np.iinfo(datatype.lower())
    values = [[ii.min, ii.max, 0], [1, ii.max - 1, ii.min + 1]]
    return np.array(values, dtype=datatype.lower())


# -- server and model metadata ------------------------------------------------------------------


def test_server_live_ready_and_metadata(triton: tc.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    metadata = triton.get_server_metadata()
    assert metadata["name"] == "modelhost"
    assert isinstance(metadata["version"], str) and metadata["version"]
    assert {"binary_tensor_data", "model_repository"} <= set(metadata["extensions"])


@pytest.mark.parametrize("version", ["", "1"], ids=["latest", "v1"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_metadata(triton: tc.InferenceServerClient, model: str, version: str) -> None:
    platform, inputs, outputs = MODELS[model]
    metadata = triton.get_model_metadata(model, version)
    assert metadata == {
        "name": model,
        "versions": ["1"],
        "platform": platform,
        "inputs": inputs,
        "outputs": outputs,
    }


@pytest.mark.parametrize("version", ["", "1"], ids=["latest", "v1"])
def test_model_config(triton: tc.InferenceServerClient, version: str) -> None:
    config = triton.get_model_config("iris-onnx", version)
    assert config["name"] == "iris-onnx"
    assert config["version"] == "1"
    assert config["max_batch_size"] == 64
    assert config["inputs"] == MODELS["iris-onnx"][1]
    assert config["outputs"] == MODELS["iris-onnx"][2]


def test_model_ready_with_and_without_version(triton: tc.InferenceServerClient) -> None:
    triton.load_model("iris-onnx")
    assert triton.is_model_ready("iris-onnx")
    assert triton.is_model_ready("iris-onnx", "1")
    assert not triton.is_model_ready("iris-onnx", "2")
    assert not triton.is_model_ready("no-such-model")


def test_unknown_model_metadata_raises(triton: tc.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="no-such-model") as info:
        triton.get_model_metadata("no-such-model")
    assert info.value.status() == "404"


# -- inference on the demo models ---------------------------------------------------------------


def run_iris(
    triton: tc.InferenceServerClient, model: str, binary: bool, outputs: list[str] | None = None
) -> tc.InferResult:
    dtype, datatype = (np.float32, "FP32") if model == "iris-onnx" else (np.float64, "FP64")
    item = tensor("input", np.array(IRIS_ROWS, dtype=dtype), datatype, binary)
    requested = [tc.InferRequestedOutput(n, binary_data=binary) for n in outputs or []]
    return triton.infer(model, [item], outputs=requested or None)


@BINARY
def test_iris_onnx(triton: tc.InferenceServerClient, binary: bool) -> None:
    result = run_iris(triton, "iris-onnx", binary, ["probabilities"])
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert probabilities.argmax(axis=1).tolist() == IRIS_LABELS
    (output,) = result.get_response()["outputs"]
    assert ("parameters" in output) is binary and ("data" in output) is not binary


@BINARY
def test_iris_sklearn_agrees_with_onnx(triton: tc.InferenceServerClient, binary: bool) -> None:
    result = run_iris(triton, "iris-sklearn", binary, ["label", "probabilities"])
    labels, probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
    assert labels.dtype == np.int64 and labels.tolist() == IRIS_LABELS
    assert probabilities.dtype == np.float64 and probabilities.shape == (3, 3)
    onnx = run_iris(triton, "iris-onnx", binary).as_numpy("probabilities")
    np.testing.assert_allclose(probabilities, onnx, atol=1e-5)


@BINARY
@pytest.mark.parametrize("wanted", ["label", "probabilities"])
def test_requested_output_only(triton: tc.InferenceServerClient, binary: bool, wanted: str) -> None:
    result = run_iris(triton, "iris-sklearn", binary, [wanted])
    assert [o["name"] for o in result.get_response()["outputs"]] == [wanted]
    other = "label" if wanted == "probabilities" else "probabilities"
    assert result.as_numpy(other) is None
    assert result.as_numpy(wanted) is not None


def test_request_id_and_version_echoed(triton: tc.InferenceServerClient) -> None:
    item = tensor("input", np.array(IRIS_ROWS, dtype=np.float32), "FP32", True)
    result = triton.infer("iris-onnx", [item], model_version="1", request_id="req-42 ✓")
    response = result.get_response()
    assert response["id"] == "req-42 ✓"
    assert response["model_name"] == "iris-onnx" and response["model_version"] == "1"
    assert "id" not in triton.infer("iris-onnx", [item]).get_response()


def test_infer_errors_raise(triton: tc.InferenceServerClient) -> None:
    item = tensor("input", np.array(IRIS_ROWS), "FP64", False)
    with pytest.raises(InferenceServerException, match="FP32") as info:
        triton.infer("iris-onnx", [item])
    assert info.value.status() == "400"


# -- every datatype through the identity model ---------------------------------------------------


@BINARY
def test_every_datatype_round_trips(triton: tc.InferenceServerClient, binary: bool) -> None:
    arrays = {dt: sample(dt) for dt in ALL_DATATYPES}
    inputs = [tensor(f"IN_{dt}", arrays[dt], dt, binary) for dt in ALL_DATATYPES]
    outputs = [tc.InferRequestedOutput(f"OUT_{dt}", binary_data=binary) for dt in ALL_DATATYPES]
    result = triton.infer("identity", inputs, outputs=outputs)
    for dt in ALL_DATATYPES:
        sent, got = arrays[dt], result.as_numpy(f"OUT_{dt}")
        assert got is not None, dt
        assert got.dtype == sent.dtype, dt
        assert got.shape == sent.shape, dt
        if dt == "BYTES":
            # Binary BYTES come back as bytes, JSON ones as text: the same UTF-8 either way.
            as_bytes = [v if isinstance(v, bytes) else v.encode() for v in got.reshape(-1)]
            assert as_bytes == [v.encode() for v in sent.reshape(-1)]
        else:
            assert np.array_equal(got, sent), f"{dt}: sent {sent.tolist()}, got {got.tolist()}"


# -- repository extension -----------------------------------------------------------------------


def states(client: tc.InferenceServerClient) -> dict[str, dict[str, str]]:
    return {entry["name"]: entry for entry in client.get_model_repository_index()}


def test_unload_and_load_on_shared_server(triton: tc.InferenceServerClient) -> None:
    name = "iris-sklearn"
    try:
        triton.load_model(name)
        assert triton.is_model_ready(name)
        assert states(triton)[name]["state"] == "READY"
        triton.unload_model(name)
        assert not triton.is_model_ready(name)
        assert not triton.is_model_ready(name, "1")
        assert states(triton)[name]["state"] == "UNAVAILABLE"
        triton.load_model(name)
        assert triton.is_model_ready(name, "1")
        assert run_iris(triton, name, True, ["label"]).as_numpy("label").tolist() == IRIS_LABELS
    finally:
        triton.load_model(name)  # leave it as the other tests expect: servable


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own, so its models' states depend on this test only."""
    write_identity_model(tmp_path / "models")
    write_failing_model(tmp_path / "models")
    with ServerProcess(tmp_path / "models", tmp_path / "server.log") as process:
        yield process


def test_repository_lifecycle(private_server: ServerProcess) -> None:
    client = connect(private_server)
    try:
        index = client.get_model_repository_index()
        assert sorted(entry["name"] for entry in index) == ["broken", "identity"]
        assert all(entry["version"] == "1" for entry in index)
        assert states(client)["identity"]["state"] == "UNAVAILABLE"  # loads are lazy
        assert not client.is_model_ready("identity")

        client.load_model("identity")
        assert client.is_model_ready("identity") and client.is_model_ready("identity", "1")
        assert states(client)["identity"]["state"] == "READY"

        client.unload_model("identity")
        assert not client.is_model_ready("identity")
        assert states(client)["identity"]["state"] == "UNAVAILABLE"
        with pytest.raises(InferenceServerException, match="no-such-model"):
            client.load_model("no-such-model")
    finally:
        client.close()


def test_broken_model_reports_its_cause(private_server: ServerProcess) -> None:
    cause = "weights file is corrupt"
    client = connect(private_server)
    try:
        item = tensor("x", np.ones(2, dtype=np.float32), "FP32", False)
        with pytest.raises(InferenceServerException, match=cause) as info:
            client.infer("broken", [item])
        assert info.value.status() == "503"
        entry = states(client)["broken"]
        assert entry["state"] == "UNAVAILABLE" and cause in entry["reason"]
        assert not client.is_model_ready("broken")
        with pytest.raises(InferenceServerException, match=cause):
            client.load_model("broken")
        with pytest.raises(InferenceServerException, match=cause):
            client.infer("broken", [item])  # inside the retry backoff: the same cause
    finally:
        client.close()
