"""``tritonclient.grpc`` against a real server: metadata, readiness, config, inference with every
datatype (raw and typed contents), requested outputs, the repository extension, bad tensors.

Every answer is compared with what REST says for the same thing: one data plane, two transports.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.e2e.test_tritonclient import IRIS_LABELS, IRIS_ROWS, sample
from tests.grpc.conftest import GrpcServer
from tests.support.models import ALL_DATATYPES

# The protocol's table of typed fields, written out here as the oracle (not imported from the
# codec under test).
TYPED_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


@pytest.fixture(scope="module")
def triton(grpc_server: GrpcServer) -> Iterator[tc.InferenceServerClient]:
    client = tc.InferenceServerClient(grpc_server.address)
    yield client
    client.close()


@pytest.fixture(scope="module")
def stub(grpc_server: GrpcServer) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    """tritonclient's own generated stub, for messages its high-level API never sends."""
    with grpc.insecure_channel(grpc_server.address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


@pytest.fixture(scope="module")
def rest(grpc_server: GrpcServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=grpc_server.url, headers=grpc_server.headers(), timeout=30
    ) as client:
        yield client


def status_of(info: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return str(info.value.status())


def iris_input(rows: list[list[float]] = IRIS_ROWS) -> tc.InferInput:
    item = tc.InferInput("input", [len(rows), 4], "FP32")
    item.set_data_from_numpy(np.array(rows, dtype=np.float32))
    return item


# -- server and model metadata ------------------------------------------------------------------


def test_live_ready_and_server_metadata(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer, rest: httpx.Client
) -> None:
    # Liveness and readiness need no key (probes carry none); the rest does, as over REST.
    assert triton.is_server_live() and triton.is_server_ready()
    metadata = triton.get_server_metadata(headers=dict(grpc_server.metadata()), as_json=True)
    assert metadata == {**rest.get("/v2").json()}
    assert metadata["name"] == "modelhost"
    assert {"binary_tensor_data", "model_repository"} <= set(metadata["extensions"])


@pytest.mark.parametrize("version", ["", "1"], ids=["latest", "v1"])
@pytest.mark.parametrize("model", ["iris-onnx", "iris-sklearn", "identity"])
def test_model_metadata_matches_rest(
    triton: tc.InferenceServerClient,
    grpc_server: GrpcServer,
    rest: httpx.Client,
    model: str,
    version: str,
) -> None:
    got = triton.get_model_metadata(model, version, headers=dict(grpc_server.metadata()))
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    expected = rest.get(path).json()
    assert got.name == expected["name"] and list(got.versions) == expected["versions"]
    assert got.platform == expected["platform"]
    for tensors, wanted in ((got.inputs, expected["inputs"]), (got.outputs, expected["outputs"])):
        assert [
            {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in tensors
        ] == wanted


def test_model_config_maps_model_yaml(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    headers = dict(grpc_server.metadata())
    config = triton.get_model_config("iris-onnx", headers=headers).config
    assert config.name == "iris-onnx" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 64
    # Triton leaves the batch dimension out of dims when the model batches.
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("input", tc.model_config_pb2.TYPE_FP32, [4])
    ]
    assert [(o.name, list(o.dims)) for o in config.output] == [("probabilities", [3])]
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert config.instance_group[0].kind == tc.model_config_pb2.ModelInstanceGroup.KIND_CPU
    identity = triton.get_model_config("identity", "1", headers=headers).config
    assert identity.max_batch_size == 0 and not identity.HasField("dynamic_batching")
    types = {i.name: i.data_type for i in identity.input}
    assert types["IN_BYTES"] == tc.model_config_pb2.TYPE_STRING
    assert all(list(i.dims) == [-1, -1] for i in identity.input)


def test_model_ready_and_unknown_names(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    headers = dict(grpc_server.metadata())
    triton.load_model("iris-onnx", headers=headers)
    assert triton.is_model_ready("iris-onnx", headers=headers)
    assert triton.is_model_ready("iris-onnx", "1", headers=headers)
    for model, version in (("no-such-model", ""), ("iris-onnx", "2")):
        with pytest.raises(InferenceServerException) as info:
            triton.is_model_ready(model, version, headers=headers)
        assert status_of(info) == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException, match="no-such-model") as info:
        triton.get_model_metadata("no-such-model", headers=headers)
    assert status_of(info) == "StatusCode.NOT_FOUND"


# -- inference ----------------------------------------------------------------------------------


def test_iris_matches_rest(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer, rest: httpx.Client
) -> None:
    result = triton.infer(
        "iris-onnx",
        [iris_input()],
        model_version="1",
        request_id="req-42 ✓",
        headers=dict(grpc_server.metadata()),
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 3)
    assert probabilities.argmax(axis=1).tolist() == IRIS_LABELS
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": IRIS_ROWS}]}
    over_rest = rest.post("/v2/models/iris-onnx/infer", json=body).json()
    rest_probabilities = np.array(over_rest["outputs"][0]["data"], dtype=np.float32)
    np.testing.assert_array_equal(probabilities.reshape(-1), rest_probabilities)
    response = result.get_response()
    assert response.id == "req-42 ✓"
    assert response.model_name == "iris-onnx" and response.model_version == "1"
    assert response.parameters["batch_size"].int64_param >= 1  # as REST's X-Batch-Size


@pytest.mark.parametrize("wanted", ["label", "probabilities"])
def test_requested_output_only(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer, wanted: str
) -> None:
    item = tc.InferInput("input", [3, 4], "FP64")
    item.set_data_from_numpy(np.array(IRIS_ROWS, dtype=np.float64))
    result = triton.infer(
        "iris-sklearn",
        [item],
        outputs=[tc.InferRequestedOutput(wanted)],
        headers=dict(grpc_server.metadata()),
    )
    assert [output.name for output in result.get_response().outputs] == [wanted]
    other = "label" if wanted == "probabilities" else "probabilities"
    assert result.as_numpy(other) is None
    if wanted == "label":
        assert result.as_numpy("label").tolist() == IRIS_LABELS


def test_every_datatype_round_trips_raw(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    """tritonclient sends every tensor as raw_input_contents and reads raw_output_contents."""
    arrays = {dt: sample(dt) for dt in ALL_DATATYPES}
    inputs = []
    for dt in ALL_DATATYPES:
        item = tc.InferInput(f"IN_{dt}", list(arrays[dt].shape), dt)
        item.set_data_from_numpy(arrays[dt])
        inputs.append(item)
    outputs = [tc.InferRequestedOutput(f"OUT_{dt}") for dt in ALL_DATATYPES]
    result = triton.infer("identity", inputs, outputs=outputs, headers=dict(grpc_server.metadata()))
    assert len(result.get_response().raw_output_contents) == len(ALL_DATATYPES)
    for dt in ALL_DATATYPES:
        sent, got = arrays[dt], result.as_numpy(f"OUT_{dt}")
        assert got is not None and got.shape == sent.shape, dt
        if dt == "BYTES":
            assert got.reshape(-1).tolist() == [v.encode() for v in sent.reshape(-1)]
        else:
            assert got.dtype == sent.dtype, dt
            assert np.array_equal(got, sent), f"{dt}: sent {sent.tolist()}, got {got.tolist()}"


def test_bytes_that_are_not_text(triton: tc.InferenceServerClient, grpc_server: GrpcServer) -> None:
    """Raw BYTES carry any bytes (JSON could not): NULs, invalid UTF-8, empty elements."""
    values = np.array([[b"\xff\xfe\x00binary", b""], [b"\x80", "ünïcode".encode()]], dtype=object)
    item = tc.InferInput("IN_BYTES", [2, 2], "BYTES")
    item.set_data_from_numpy(values)
    others = []
    for dt in ALL_DATATYPES:
        if dt != "BYTES":
            other = tc.InferInput(f"IN_{dt}", [1, 1], dt)
            other.set_data_from_numpy(np.zeros((1, 1), dtype=sample(dt).dtype))
            others.append(other)
    result = triton.infer(
        "identity",
        [item, *others],
        outputs=[tc.InferRequestedOutput("OUT_BYTES")],
        headers=dict(grpc_server.metadata()),
    )
    assert result.as_numpy("OUT_BYTES").tolist() == values.tolist()


def typed_request(arrays: dict[str, np.ndarray]) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="identity")
    for dt, array in arrays.items():
        tensor = request.inputs.add(name=f"IN_{dt}", datatype=dt, shape=array.shape)
        values = array.reshape(-1).tolist()
        if dt == "BYTES":
            values = [v.encode() for v in values]
        getattr(tensor.contents, TYPED_FIELDS[dt]).extend(values)
    return request


def test_every_datatype_round_trips_typed(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, grpc_server: GrpcServer
) -> None:
    """Typed ``contents`` in, typed ``contents`` back (every datatype that has a typed field)."""
    arrays = {dt: sample(dt) for dt in TYPED_FIELDS}
    request = typed_request(arrays)
    request.model_name = "identity-typed"
    response = stub.ModelInfer(request, metadata=grpc_server.metadata())
    assert not response.raw_output_contents
    by_name = {output.name: output for output in response.outputs}
    for dt, sent in arrays.items():
        output = by_name[f"OUT_{dt}"]
        assert output.datatype == dt and list(output.shape) == list(sent.shape)
        got = list(getattr(output.contents, TYPED_FIELDS[dt]))
        if dt == "BYTES":
            assert got == [v.encode() for v in sent.reshape(-1)]
        else:
            assert np.array_equal(np.array(got, dtype=sent.dtype), sent.reshape(-1)), dt


# -- bad tensors: INVALID_ARGUMENT naming the input, with REST's message -------------------------


def raw_iris(data: bytes, datatype: str = "FP32") -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="iris-onnx", raw_input_contents=[data])
    request.inputs.add(name="input", datatype=datatype, shape=[1, 4])
    return request


ROW = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (raw_iris(ROW.tobytes()[:-1]), ["input", "16 bytes", "got 15"]),
        (raw_iris(ROW.astype(np.float64).tobytes(), "FP64"), ["input", "FP64", "FP32"]),
        (raw_iris(ROW.tobytes(), "FLOAT"), ["input", "unknown datatype"]),
        (raw_iris(b""), ["input", "16 bytes", "got 0"]),
    ],
    ids=["short-by-one", "wrong-datatype", "unknown-datatype", "empty"],
)
def test_bad_raw_input_contents(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
    grpc_server: GrpcServer,
    request_: service_pb2.ModelInferRequest,
    words: list[str],
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request_, metadata=grpc_server.metadata())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for word in words:
        assert word in info.value.details()
    trailing = dict(info.value.trailing_metadata() or ())
    assert trailing["error-code"] == "invalid_tensor" and trailing["x-request-id"]


def test_bad_messages_are_invalid_argument(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, grpc_server: GrpcServer
) -> None:
    both = raw_iris(ROW.tobytes())
    both.inputs[0].contents.fp32_contents.extend(ROW.reshape(-1).tolist())
    too_many = raw_iris(ROW.tobytes())
    too_many.raw_input_contents.append(b"")
    wrong_field = service_pb2.ModelInferRequest(model_name="iris-onnx")
    wrong_field.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    wrong_field.inputs[0].contents.int_contents.extend([1, 2, 3, 4])
    short = service_pb2.ModelInferRequest(model_name="iris-onnx")
    short.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    short.inputs[0].contents.fp32_contents.extend([1.0, 2.0])
    fp16 = service_pb2.ModelInferRequest(model_name="identity")
    fp16.inputs.add(name="IN_FP16", datatype="FP16", shape=[1])
    fp16.inputs[0].contents.fp32_contents.append(1.5)
    for request, words in (
        (both, ["input", "contents", "raw_input_contents"]),
        (too_many, ["2 entries for 1 inputs"]),
        (wrong_field, ["input", "fp32_contents", "int_contents"]),
        (short, ["input", "needs 4 elements, got 2"]),
        (fp16, ["IN_FP16", "raw_input_contents"]),
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, metadata=grpc_server.metadata())
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, words
        for word in words:
            assert word in info.value.details()
    # Bytes that are not a ModelInferRequest at all.
    garbage = grpc.insecure_channel(grpc_server.address).unary_unary(
        "/inference.GRPCInferenceService/ModelInfer"
    )
    with pytest.raises(grpc.RpcError) as info:
        garbage(b"\xff\xff\xff", metadata=grpc_server.metadata())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_same_message_as_rest(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, grpc_server: GrpcServer, rest: httpx.Client
) -> None:
    data = [[5.1, 3.5, 1.4, 0.2]]
    over_rest = rest.post(
        "/v2/models/iris-onnx/infer",
        json={"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": data}]},
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(raw_iris(np.array(data).tobytes(), "FP64"), metadata=grpc_server.metadata())
    assert over_rest.status_code == 400
    assert info.value.details() == over_rest.json()["error"]


def test_message_over_the_body_limit(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    rows = 160_000  # 2 x 160k FP32 values: 1.28 MB, over the 1 MiB limit
    item = tc.InferInput("IN_FP32", [2, rows], "FP32")
    item.set_data_from_numpy(np.ones((2, rows), dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        triton.infer("identity", [item], headers=dict(grpc_server.metadata()))
    assert status_of(info) == "StatusCode.RESOURCE_EXHAUSTED"
    assert str(1 << 20) in str(info.value.message())


# -- the repository extension --------------------------------------------------------------------


def test_repository_index_load_unload(
    triton: tc.InferenceServerClient, grpc_server: GrpcServer, rest: httpx.Client
) -> None:
    headers = dict(grpc_server.metadata())
    name = "iris-sklearn"

    def states() -> dict[str, str]:
        index = triton.get_model_repository_index(headers=headers).models
        return {entry.name: entry.state for entry in index}

    try:
        listed = {entry.name for entry in triton.get_model_repository_index(headers=headers).models}
        over_rest = {entry["name"] for entry in rest.post("/v2/repository/index").json()}
        assert listed == over_rest and {"iris-onnx", name, "identity"} <= listed
        triton.load_model(name, headers=headers)
        assert states()[name] == "READY" and triton.is_model_ready(name, headers=headers)
        ready_only = triton.get_model_repository_index(headers=headers)
        assert name in {entry.name for entry in ready_only.models}
        triton.unload_model(name, headers=headers)
        assert states()[name] == "UNAVAILABLE"
        assert not triton.is_model_ready(name, headers=headers)
        with pytest.raises(InferenceServerException, match="no-such-model") as info:
            triton.load_model("no-such-model", headers=headers)
        assert status_of(info) == "StatusCode.NOT_FOUND"
    finally:
        triton.load_model(name, headers=headers)
