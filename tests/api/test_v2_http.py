"""The V2 REST protocol's details over plain HTTP: bodies built and parsed by hand."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.models import ALL_DATATYPES

HEADER = "Inference-Header-Content-Length"
IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
# The binary tensor extension's encoding of each fixed-size datatype: little-endian, row-major.
WIRE = {
    dt: np.dtype(code)
    for dt, code in {
        "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
        "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
        "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
    }.items()
}  # fmt: skip


def binary_request(doc: dict[str, Any], blobs: list[bytes]) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(doc).encode()
    return header + b"".join(blobs), {
        HEADER: str(len(header)),
        "content-type": "application/octet-stream",
    }


def parse_response(response: httpx.Response) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON header and each binary output's raw bytes, by name."""
    assert response.status_code == 200, response.text
    length = response.headers.get(HEADER)
    if length is None:
        assert response.headers["content-type"] == "application/json"
        return response.json(), {}
    assert response.headers["content-type"] == "application/octet-stream"
    body = response.content
    doc = json.loads(body[: int(length)])
    blobs, offset = {}, int(length)
    for output in doc["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            blobs[output["name"]] = body[offset : offset + size]
            offset += size
    assert offset == len(body), "bytes left over after the described outputs"
    return doc, blobs


def encode_bytes(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def decode_bytes(raw: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return items


def iris_json(**extra: Any) -> dict[str, Any]:
    tensor = {"name": "input", "datatype": "FP32", "shape": [2, 4], "data": IRIS.ravel().tolist()}
    return {"inputs": [tensor], **extra}


# -- server and model metadata ------------------------------------------------------------------


def test_server_metadata(client: httpx.Client) -> None:
    response = client.get("/v2")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["name"] == "modelhost" and isinstance(doc["version"], str)
    assert {"binary_tensor_data", "model_repository"} <= set(doc["extensions"])


def test_health(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


@pytest.mark.parametrize("suffix", ["", "/versions/1"])
def test_model_metadata_fields(client: httpx.Client, suffix: str) -> None:
    doc = client.get(f"/v2/models/iris-sklearn{suffix}").json()
    assert set(doc) >= {"name", "versions", "platform", "inputs", "outputs"}
    assert doc["name"] == "iris-sklearn" and doc["versions"] == ["1"]
    assert doc["platform"] == "sklearn"
    assert doc["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in doc["outputs"]] == [
        ("label", "INT64", [-1]),
        ("probabilities", "FP64", [-1, 3]),
    ]


def test_identity_metadata_lists_every_datatype(client: httpx.Client) -> None:
    doc = client.get("/v2/models/identity").json()
    assert doc["platform"] == "python"
    assert {t["name"]: t["datatype"] for t in doc["inputs"]} == {
        f"IN_{dt}": dt for dt in ALL_DATATYPES
    }
    assert all(t["shape"] == [-1, -1] for t in doc["inputs"] + doc["outputs"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/v2/nope"),
        ("GET", "/v2/models/iris-onnx/nope"),
        ("POST", "/v2/models/iris-onnx/versions/1/nope"),
        ("GET", "/v2/repository/nope"),
        ("GET", "/v1/models/iris-onnx"),
    ],
)
def test_unknown_route_is_json_404(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": f"no route {path}", "code": "not_found"}


def test_wrong_method_is_json_405(client: httpx.Client) -> None:
    response = client.get("/v2/models/iris-onnx/infer")
    assert response.status_code == 405
    assert set(response.json()) == {"error", "code"}


# -- JSON and binary tensors --------------------------------------------------------------------


def test_json_request_json_response(client: httpx.Client) -> None:
    response = client.post("/v2/models/iris-onnx/infer", json=iris_json(id="r1"))
    doc, blobs = parse_response(response)
    assert blobs == {} and doc["id"] == "r1"
    assert doc["model_name"] == "iris-onnx" and doc["model_version"] == "1"
    (output,) = doc["outputs"]
    assert output["datatype"] == "FP32" and output["shape"] == [2, 3]
    assert np.argmax(np.array(output["data"]).reshape(2, 3), axis=1).tolist() == [0, 2]


def test_binary_request_by_hand_matches_json(client: httpx.Client) -> None:
    tensor = {"name": "input", "datatype": "FP32", "shape": [2, 4]}
    tensor["parameters"] = {"binary_data_size": IRIS.nbytes}
    wanted = [{"name": "probabilities", "parameters": {"binary_data": True}}]
    body, headers = binary_request(
        {"id": "b1", "inputs": [tensor], "outputs": wanted}, [IRIS.astype("<f4").tobytes()]
    )
    doc, blobs = parse_response(
        client.post("/v2/models/iris-onnx/infer", content=body, headers=headers)
    )
    assert doc["id"] == "b1"
    (output,) = doc["outputs"]
    assert output["parameters"] == {"binary_data_size": 24} and "data" not in output
    binary = np.frombuffer(blobs["probabilities"], dtype="<f4").reshape(output["shape"])
    reference, _ = parse_response(client.post("/v2/models/iris-onnx/infer", json=iris_json()))
    np.testing.assert_array_equal(binary.ravel(), np.float32(reference["outputs"][0]["data"]))


def output(name: str, binary: bool | None) -> dict[str, Any]:
    return (
        {"name": name} if binary is None else {"name": name, "parameters": {"binary_data": binary}}
    )


@pytest.mark.parametrize(
    ("parameters", "outputs", "binary_outputs"),
    [
        ({"binary_data_output": True}, None, {"label", "probabilities"}),
        ({"binary_data_output": True}, {"label": False, "probabilities": None}, {"probabilities"}),
        ({"binary_data_output": True}, {"label": None}, {"label"}),
        ({"binary_data_output": False}, {"label": True, "probabilities": None}, {"label"}),
        ({}, {"label": None, "probabilities": True}, {"probabilities"}),
        ({}, None, set()),
    ],
    ids=["all", "one-json", "only-label", "one-binary", "per-output", "none"],
)
def test_binary_data_output(
    client: httpx.Client,
    parameters: dict[str, Any],
    outputs: dict[str, bool | None] | None,
    binary_outputs: set[str],
) -> None:
    doc = iris_json(parameters=parameters)
    doc["inputs"][0]["datatype"] = "FP64"
    if outputs is not None:
        doc["outputs"] = [output(name, binary) for name, binary in outputs.items()]
    response = client.post("/v2/models/iris-sklearn/infer", json=doc)
    header, blobs = parse_response(response)
    assert set(blobs) == binary_outputs
    returned = {o["name"]: o for o in header["outputs"]}
    assert list(returned) == list(outputs or ["label", "probabilities"])
    for name, entry in returned.items():
        assert ("data" in entry) is (name not in binary_outputs)
    label = blobs.get("label")
    labels = np.frombuffer(label, "<i8") if label else returned["label"]["data"]
    assert list(labels) == [0, 2]
    if "probabilities" in blobs:
        probabilities = np.frombuffer(blobs["probabilities"], "<f8").reshape(2, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_every_datatype_binary_by_hand(client: httpx.Client) -> None:
    """Every datatype as raw little-endian bytes (BYTES length-prefixed), one input as JSON."""
    words = [b"caf\xc3\xa9", b"", b"\x00\xff raw", b"z"]
    arrays = {dt: np.arange(4).astype(WIRE[dt]).reshape(2, 2) for dt in WIRE}
    arrays["BOOL"] = np.array([[True, False], [False, True]])
    inputs, blobs = [], []
    for dt in ALL_DATATYPES:
        raw = encode_bytes(words) if dt == "BYTES" else arrays[dt].tobytes()
        tensor = {"name": f"IN_{dt}", "datatype": dt, "shape": [2, 2]}
        if dt == "INT32":  # mixing JSON and binary inputs in one request is allowed
            inputs.append({**tensor, "data": [[0, 1], [2, 3]]})
            continue
        inputs.append({**tensor, "parameters": {"binary_data_size": len(raw)}})
        blobs.append(raw)
    body, headers = binary_request(
        {"inputs": inputs, "parameters": {"binary_data_output": True}}, blobs
    )
    doc, out = parse_response(
        client.post("/v2/models/identity/infer", content=body, headers=headers)
    )
    assert {o["name"] for o in doc["outputs"]} == {f"OUT_{dt}" for dt in ALL_DATATYPES}
    assert all(o["shape"] == [2, 2] for o in doc["outputs"])
    assert decode_bytes(out["OUT_BYTES"]) == words
    for dt, array in arrays.items():
        got = np.frombuffer(out[f"OUT_{dt}"], dtype=array.dtype).reshape(2, 2)
        assert np.array_equal(got, array), dt


def test_empty_batch(client: httpx.Client) -> None:
    doc = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [0, 4], "data": []}]}
    header, _ = parse_response(client.post("/v2/models/iris-onnx/infer", json=doc))
    assert header["outputs"][0]["shape"] == [0, 3] and header["outputs"][0]["data"] == []


def test_uint64_above_int64_range_in_json(client: httpx.Client) -> None:
    """JSON UINT64 values past INT64's max, next to small ones, must round-trip exactly."""
    big = [[0, 2**64 - 1], [1, 2**63]]
    inputs = [
        {"name": f"IN_{dt}", "datatype": dt, "shape": [2, 2], "data": [[0, 1], [1, 0]]}
        for dt in ALL_DATATYPES
        if dt not in ("BYTES", "BOOL", "UINT64")
    ]
    inputs.append({"name": "IN_BOOL", "datatype": "BOOL", "shape": [2, 2], "data": [True] * 4})
    inputs.append({"name": "IN_BYTES", "datatype": "BYTES", "shape": [2, 2], "data": ["a"] * 4})
    inputs.append({"name": "IN_UINT64", "datatype": "UINT64", "shape": [2, 2], "data": big})
    doc = {"inputs": inputs, "outputs": [{"name": "OUT_UINT64"}]}
    response = client.post("/v2/models/identity/infer", json=doc)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [0, 2**64 - 1, 1, 2**63]
