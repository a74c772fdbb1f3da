"""Every bad request gets the right 4xx and a JSON ``{"error", "code"}``, and leaves no trace."""

from __future__ import annotations

import http.client
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.server import ServerProcess

HEADER = "Inference-Header-Content-Length"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def assert_error(
    response: httpx.Response, status: int, code: str | None = None, mentions: str | None = None
) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["code"], str) and body["code"]
    if code is not None:
        assert body["code"] == code, body
    if mentions is not None:
        assert mentions in body["error"], body
    return body


def tensor(**overrides: Any) -> dict[str, Any]:
    return {"name": "input", "datatype": "FP32", "shape": [1, 4], "data": IRIS_ROW, **overrides}


def request(*inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"inputs": list(inputs) or [tensor()], **extra}


def one(datatype: str, data: Any) -> dict[str, Any]:
    """A one-input request for the identity model (decoding fails before inputs are matched)."""
    return {
        "inputs": [{"name": f"IN_{datatype}", "datatype": datatype, "shape": [1, 2], "data": data}]
    }


def shaped(datatype: str, shape: list[int], data: Any) -> dict[str, Any]:
    """A one-input identity-model request with any declared shape."""
    return {
        "inputs": [{"name": f"IN_{datatype}", "datatype": datatype, "shape": shape, "data": data}]
    }


def nested(datatype: str, item: str, depth: int) -> bytes:
    """A request whose data is ``item`` in ``depth`` nested lists (more than json.dumps can
    write)."""
    head = f'{{"inputs": [{{"name": "IN_{datatype}", "datatype": "{datatype}", "shape": [1, 1], '
    return f'{head}"data": {"[" * depth}{item}{"]" * depth}}}]}}'.encode()


ONNX, SKL, IDENT = "iris-onnx", "iris-sklearn", "identity"
BR, IT = "bad_request", "invalid_tensor"
R, T = request, tensor
BATCH_65 = {"shape": [65, 4], "data": [IRIS_ROW] * 65}
WRAPS = [2**62 + 1, 4]  # 2**64 + 4 elements: counted in int64, 4

BAD_BODIES: dict[str, tuple[str, Any, str | None, str | None]] = {
    # id: (model, body, code, words in the error); each is a 400
    "malformed-json": (ONNX, b"{nope", BR, "not valid JSON"),
    "empty-body": (ONNX, b"", BR, "not valid JSON"),
    "nan-literal": (ONNX, b'{"inputs": [NaN]}', BR, "not valid JSON"),
    "body-is-list": (ONNX, b"[1, 2]", BR, "JSON object"),
    "body-is-string": (ONNX, b'"infer"', BR, "JSON object"),
    "missing-inputs": (ONNX, {}, BR, "'inputs'"),
    "inputs-not-list": (ONNX, {"inputs": {}}, BR, "'inputs'"),
    "empty-inputs": (ONNX, {"inputs": []}, BR, "'inputs'"),
    "input-not-object": (ONNX, {"inputs": [3]}, BR, "inputs[0]"),
    "input-without-name": (ONNX, R(T(name="")), BR, "'name'"),
    "id-not-string": (ONNX, R(id=7), BR, "'id'"),
    "parameters-not-object": (ONNX, R(parameters=[1]), BR, "parameters"),
    "outputs-not-list": (ONNX, R(outputs={}), BR, "'outputs'"),
    "output-without-name": (ONNX, R(outputs=[{}]), BR, "outputs[0]"),
    "binary-data-not-bool": (
        ONNX, R(outputs=[{"name": "probabilities", "parameters": {"binary_data": 1}}]), BR,
        "binary_data must be true or false",
    ),
    "wrong-shape": (ONNX, R(T(shape=[1, 3], data=IRIS_ROW[:3])), IT, "takes [-1, 4]"),
    "wrong-rank": (ONNX, R(T(shape=[4])), IT, "has shape [4]"),
    "shape-disagrees-with-data": (ONNX, R(T(shape=[2, 4])), IT, "needs 8 elements, got 4"),
    "negative-dim": (ONNX, R(T(shape=[-1, 4])), IT, "non-negative integers"),
    "shape-not-list": (ONNX, R(T(shape="1x4")), IT, "'shape'"),
    "fp64-to-fp32": (ONNX, R(T(datatype="FP64")), IT, "is FP64; the model takes FP32"),
    "fp32-to-fp64": (SKL, R(T()), IT, "is FP32; the model takes FP64"),
    "unknown-datatype": (ONNX, R(T(datatype="FLOAT32")), IT, "unknown datatype 'FLOAT32'"),
    "lowercase-datatype": (ONNX, R(T(datatype="fp32")), IT, "unknown datatype 'fp32'"),
    "strings-for-fp32": (ONNX, R(T(data=["1", "2", "3", "4"])), IT, "FP32 data must be numbers"),
    "null-in-data": (ONNX, R(T(data=[1, None, 3, 4])), IT, "input 'input'"),
    "ragged-data": (ONNX, R(T(shape=[2, 4], data=[IRIS_ROW, IRIS_ROW[:3]])), IT, "regular array"),
    "data-not-list": (ONNX, R(T(data="1,2,3,4")), IT, "'data' must be a list"),
    "no-data": (ONNX, R({"name": "input", "datatype": "FP32", "shape": [1, 4]}), IT, "neither"),
    "unknown-input": (ONNX, R(T(), T(name="extra")), IT, "unknown input 'extra'"),
    "duplicate-input": (ONNX, R(T(), T()), IT, "repeat"),
    "unknown-output": (ONNX, R(outputs=[{"name": "logits"}]), IT, "unknown output 'logits'"),
    "onnx-batch-65": (ONNX, R(T(**BATCH_65)), IT, "over the model's max_batch_size 64"),
    "sklearn-batch-65": (SKL, R(T(datatype="FP64", **BATCH_65)), IT, "max_batch_size 64"),
    "missing-input": (IDENT, one("INT32", [1, 2]), IT, "missing input 'IN_BOOL'"),
    "floats-for-int32": (IDENT, one("INT32", [1.5, 2]), IT, "INT32 data must be integers"),
    "uint8-over-range": (IDENT, one("UINT8", [1, 256]), IT, "out of range for UINT8"),
    "uint8-negative": (IDENT, one("UINT8", [-1, 0]), IT, "out of range for UINT8"),
    "int8-over-range": (IDENT, one("INT8", [0, 128]), IT, "out of range for INT8"),
    "ints-for-bool": (IDENT, one("BOOL", [1, 0]), IT, "BOOL data must be true/false"),
    "ints-for-bytes": (IDENT, one("BYTES", [1, 0]), IT, "must be strings"),
    # Shapes numpy cannot hold (they were 500s).
    "shape-product-wraps-int64": (IDENT, shaped("FP32", WRAPS, [1, 2, 3, 4]), IT, "too many"),
    "dimension-past-int64": (IDENT, shaped("FP32", [2**63, 1], [1.0]), IT, "too many elements"),
    "dimension-past-int64-alone": (ONNX, R(T(shape=[2**63])), IT, "too many elements"),
    "65-dimensions": (IDENT, shaped("FP32", [1] * 65, [1.0]), IT, "at most 64"),
    "bytes-nested-1000-deep": (IDENT, nested("BYTES", '"a"', 1000), IT, "deeper"),
    "ints-nested-1000-deep": (IDENT, nested("INT32", "1", 1000), IT, "IN_INT32"),
    "fp32-overflow": (ONNX, R(T(data=[1e300, 3.5, 1.4, 0.2])), IT, "out of range for FP32"),
    "fp16-overflow": (IDENT, shaped("FP16", [1, 1], [70000.0]), IT, "out of range for FP16"),
    # Past 64 values the check runs in numpy, not over Python floats: both ways refuse.
    "fp16-overflow-large": (IDENT, shaped("FP16", [1, 100], [[1.0] * 99 + [-70000.0]]), IT,
                            "out of range for FP16"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_json_body(client: httpx.Client, case: str) -> None:
    model, body, code, mentions = BAD_BODIES[case]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(f"/v2/models/{model}/infer", content=content)
    assert_error(response, 400, code, mentions)


# -- binary tensors and Inference-Header-Content-Length -----------------------------------------

FOUR = np.arange(8, dtype="<f4").tobytes()  # a [2, 4] FP32 tensor


def binary(size: Any, blob: bytes, datatype: str = "FP32") -> tuple[str, bytes, bytes]:
    """An iris-onnx request (FP32) or, for BYTES, an identity one, with one binary input."""
    model, name, shape = (
        (ONNX, "input", [2, 4]) if datatype == "FP32" else (IDENT, "IN_BYTES", [1, 2])
    )
    spec = {"name": name, "datatype": datatype, "shape": shape}
    spec["parameters"] = {"binary_data_size": size}
    return model, json.dumps({"inputs": [spec]}).encode(), blob


def strings(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


BAD_BINARY = {
    # id: ((model, header, blob), words in the error)
    "too-few-bytes": (binary(32, FOUR[:-4]), "only 28 bytes"),
    "too-many-bytes": (binary(32, FOUR + b"\0" * 4), "4 bytes of binary data follow"),
    "size-disagrees-with-shape": (binary(28, FOUR[:-4]), "needs 32 bytes, got 28"),
    "size-negative": (binary(-1, FOUR), "binary_data_size must be a non-negative integer"),
    "size-not-integer": (binary("32", FOUR), "binary_data_size must be a non-negative integer"),
    "bytes-element-overruns": (
        binary(13, struct.pack("<I", 99) + b"hello\0\0\0\0", "BYTES"), "says 99 bytes"
    ),
    "bytes-length-cut": (binary(11, strings(b"hello") + b"\0\0", "BYTES"), "inside an element"),
    "bytes-too-few-elements": (binary(9, strings(b"hello"), "BYTES"), "needs 2 BYTES elements"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_BINARY))
def test_bad_binary_tensor(client: httpx.Client, case: str) -> None:
    (model, header, blob), mentions = BAD_BINARY[case]
    headers = {HEADER: str(len(header)), "content-type": "application/octet-stream"}
    response = client.post(f"/v2/models/{model}/infer", content=header + blob, headers=headers)
    assert_error(response, 400, None, mentions)


@pytest.mark.parametrize(
    ("value", "mentions"),
    [
        ("abc", "must be a non-negative integer"),
        ("", "must be a non-negative integer"),
        ("1e2", "must be a non-negative integer"),
        ("99999", "but the body has"),
        ("-5", "must be a non-negative integer"),
        ("10", "not valid JSON"),  # cuts the JSON header short
        (None, "not valid JSON"),  # a binary body sent without the header
    ],
)
def test_bad_header_length(client: httpx.Client, value: str | None, mentions: str) -> None:
    _, header, blob = binary(32, FOUR)
    headers = {"content-type": "application/octet-stream"}
    if value is not None:
        headers[HEADER] = value
    response = client.post("/v2/models/iris-onnx/infer", content=header + blob, headers=headers)
    assert_error(response, 400, "bad_request", mentions)


# -- names, versions, routes --------------------------------------------------------------------


def raw(server: ServerProcess, method: str, path: str, body: bytes = b"") -> httpx.Response:
    """A request whose path goes out exactly as written (httpx would normalise dot segments)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body)
        answer = connection.getresponse()
        headers = dict(answer.getheaders())
        return httpx.Response(answer.status, headers=headers, content=answer.read())
    finally:
        connection.close()


ENDPOINTS = [
    ("GET", "/v2/models/{}"),
    ("GET", "/v2/models/{}/ready"),
    ("GET", "/v2/models/{}/config"),
    ("GET", "/v2/models/{}/versions/1"),
    ("POST", "/v2/models/{}/infer"),
    ("POST", "/v2/repository/models/{}/load"),
    ("POST", "/v2/repository/models/{}/unload"),
]
ODD_NAMES = [
    "..%2F..%2Fetc",
    "..",
    ".",
    "%2E%2E",
    "..%5C..%5Cetc",
    "a%20b",
    "%00",
    "na%24me",
    "-x",
    "_x",
    "x" * 200,
    "%C3%A9t%C3%A9",
    "iris-onnx%00",
    "iris-onnx%2F..",
    "iris-onnx%3B",
    "~root",
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_model_names_are_refused(server: ServerProcess, name: str) -> None:
    body = json.dumps(request()).encode()
    for method, template in ENDPOINTS:
        response = raw(server, method, template.format(name), body if "infer" in template else b"")
        assert 400 <= response.status_code < 500, (method, template, response.text)
        assert set(response.json()) == {"error", "code"}


def test_model_name_with_trailing_newline_is_invalid(server: ServerProcess) -> None:
    """``$`` in the name pattern lets 'name\\n' through; it is no safe path segment."""
    response = raw(server, "GET", "/v2/models/iris-onnx%0A")
    assert_error(response, 400, "invalid_model_name")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_model_is_404(client: httpx.Client, method: str) -> None:
    path = "/v2/models/no-such-model" + ("/infer" if method == "POST" else "")
    response = client.request(method, path, content=b"{not even json")
    assert_error(response, 404, "model_not_found", "no-such-model")


def version_paths(version: str) -> list[tuple[str, str]]:
    base = f"/v2/models/iris-onnx/versions/{version}"
    return [("GET", base), ("GET", f"{base}/ready"), ("GET", f"{base}/config"),
            ("POST", f"{base}/infer")]  # fmt: skip


# "1" * 4400: past the 4,300 digits int() takes (it raised ValueError: a 500); "9" * 19: past
# int64.
@pytest.mark.parametrize(
    "version", ["2", "0", "-1", "abc", "1.0", "%201", "1%0A", "1" * 4400, "9" * 19]
)
def test_unknown_version_is_404(server: ServerProcess, version: str) -> None:
    body = json.dumps(request()).encode()
    for method, path in version_paths(version):
        assert_error(raw(server, method, path, body), 404, "version_not_found")


@pytest.mark.parametrize("version", ["%C2%B2", "%D9%A1"], ids=["superscript-2", "arabic-1"])
def test_non_ascii_digit_version_is_404(server: ServerProcess, version: str) -> None:
    """str.isdigit() says yes to '²' (int() then fails: a 500) and to '١' (served as 1)."""
    body = json.dumps(request()).encode()
    for method, path in version_paths(version):
        assert_error(raw(server, method, path, body), 404, "version_not_found")


@pytest.mark.parametrize(
    ("path", "body", "mentions"),
    [
        ("/v2/repository/index", b"[]", "JSON object"),
        ("/v2/repository/index", b'{"ready": "yes"}', "'ready'"),
        ("/v2/repository/models/iris-onnx/load", b"{oops", "not valid JSON"),
        ("/v2/repository/models/iris-onnx/load", b'{"parameters": 3}', "'parameters'"),
        ("/v2/repository/models/iris-onnx/load", b'{"parameters": {"version": [1]}}', "version"),
    ],
)
def test_bad_repository_requests(
    client: httpx.Client, path: str, body: bytes, mentions: str
) -> None:
    assert_error(client.post(path, content=body), 400, "bad_request", mentions)


# -- management API bodies: an integer field takes a JSON integer (3 or 3.0, as JSON Schema
# says), nothing else that lax parsing reads as one (true is 1 to Python, "1" is 1 to pydantic) --

NOT_INTEGERS = [True, "1", 1.5, None]


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
def test_alias_version_must_be_an_integer(client: httpx.Client, value: object) -> None:
    before = client.get(f"/api/v1/models/{SKL}").json()["aliases"]
    response = client.put(f"/api/v1/models/{SKL}/aliases/typed", json={"version": value})
    assert_error(response, 400, mentions="version")
    assert client.get(f"/api/v1/models/{SKL}").json()["aliases"] == before


def test_an_integer_may_be_written_with_a_zero_fraction(client: httpx.Client) -> None:
    response = client.put(f"/api/v1/models/{SKL}/aliases/whole", json={"version": 1.0})
    assert response.status_code == 200, response.text
    assert response.json()["aliases"]["whole"] == 1


@pytest.mark.parametrize("value", [v for v in NOT_INTEGERS if v is not None], ids=repr)
def test_registered_version_must_be_an_integer(client: httpx.Client, value: object) -> None:
    def versions() -> list[int]:
        return [v["version"] for v in client.get(f"/api/v1/models/{SKL}").json()["versions"]]

    before = versions()
    response = client.post(f"/api/v1/models/{SKL}/versions", json={"version": value})
    assert_error(response, 400, mentions="version")
    assert versions() == before


@pytest.mark.parametrize("field", ["requests_per_minute", "max_in_flight"])
@pytest.mark.parametrize("value", [v for v in NOT_INTEGERS if v is not None], ids=repr)
def test_key_limits_must_be_integers(client: httpx.Client, field: str, value: object) -> None:
    user = "typed-limits"
    if user not in [u["name"] for u in client.get("/api/v1/users").json()]:
        assert client.post("/api/v1/users", json={"name": user}).status_code == 201
    response = client.post(f"/api/v1/users/{user}/keys", json={field: value})
    assert_error(response, 400, mentions=field)
    assert client.get(f"/api/v1/users/{user}/keys").json() == []


# -- size limits (the server runs with --max-request-bytes 1MiB) ---------------------------------

OVERSIZE = json.dumps(request(padding="x" * (1 << 20))).encode()


def chunks(data: bytes, size: int = 64 << 10) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversize_body_is_413(client: httpx.Client, chunked: bool) -> None:
    content = chunks(OVERSIZE) if chunked else OVERSIZE
    response = client.post("/v2/models/iris-onnx/infer", content=content)
    assert_error(response, 413, "payload_too_large")


# -- and afterwards -----------------------------------------------------------------------------


def test_bad_requests_do_not_load_a_model(client: httpx.Client) -> None:
    """Everything is checked before a load: a stream of bad requests never loads the model."""
    assert client.post("/v2/repository/models/iris-sklearn/unload").status_code == 200
    try:
        loads = client.get("/api/v1/cache").json()["stats"]["loads"]
        for case in ("fp32-to-fp64", "sklearn-batch-65"):
            _, body, code, mentions = BAD_BODIES[case]
            response = client.post("/v2/models/iris-sklearn/infer", json=body)
            assert_error(response, 400, code, mentions)
        bad = request(tensor(datatype="FP64"), outputs=[{"name": "nope"}])
        assert_error(client.post("/v2/models/iris-sklearn/infer", json=bad), 400)
        assert client.get("/api/v1/cache").json()["stats"]["loads"] == loads
        assert_error(client.get("/v2/models/iris-sklearn/ready"), 400, "not_ready")
    finally:
        assert client.post("/v2/repository/models/iris-sklearn/load").status_code == 200


def test_server_is_healthy_after_bad_requests(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    good = client.post("/v2/models/iris-onnx/infer", json=request())
    assert good.status_code == 200, good.text
    assert good.json()["outputs"][0]["shape"] == [1, 3]
    cache = client.get("/api/v1/cache").json()
    assert cache["reserved_bytes"] == 0
    assert all(model["leases"] == 0 for model in cache["models"]), cache["models"]
    assert all(model["state"] in ("READY", "UNAVAILABLE") for model in cache["models"])


# -- deadlines and methods ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "parameters"),
    [({"X-Request-Timeout-Ms": "1e-9"}, {}), ({}, {"timeout": 1})],
    ids=["header-1e-9-ms", "parameter-1-us"],
)
def test_deadline_too_short_to_run_is_504(
    client: httpx.Client, headers: dict[str, str], parameters: dict[str, Any]
) -> None:
    """A deadline no call of the model could meet is the deadline's fault (504), not a full
    queue's (503: that would send the client to another replica to fail the same way)."""
    assert client.post("/v2/models/iris-onnx/infer", json=request()).status_code == 200  # timed
    body = request(parameters=parameters)
    response = client.post("/v2/models/iris-onnx/infer", json=body, headers=headers)
    assert_error(response, 504, "deadline_exceeded")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v2/models/iris-onnx/infer", {"POST"}),
        ("PUT", "/v2/models/iris-onnx", {"GET", "HEAD"}),
        ("DELETE", "/v2/health/ready", {"GET", "HEAD"}),
        ("PUT", "/api/v1/users", {"GET", "POST"}),
    ],
)
def test_405_says_what_is_allowed(
    client: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


def test_openapi_document_says_what_the_server_answers(client: httpx.Client) -> None:
    """400s, not FastAPI's 422s; 401 and 403 everywhere, 404/409 where they happen; names with
    their patterns; the bearer key."""
    document = client.get("/api/v1/openapi.json").json()
    assert "422" not in str(document)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    operations = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    for (method, path), operation in operations.items():
        assert "401" in operation["responses"], (method, path)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["schema"]["type"] == "string":
                assert "pattern" in parameter["schema"], (method, path, parameter)
    assert {"400", "403", "404"} <= set(operations["GET", "/models/{name}"]["responses"])
    assert "409" in operations["POST", "/users"]["responses"]
    assert "409" in operations["DELETE", "/models/{name}/versions/{version}"]["responses"]
