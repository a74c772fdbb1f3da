"""A big JSON body is decoded off the event loop: other clients are not stalled behind it, and
the server's memory does not grow by the ~15x its Python objects would take."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.support.models import write_demo_models, write_python_model
from tests.support.server import ServerProcess

ROWS = 500_000  # [ROWS, 4] FP32 as JSON: 11 MB

ECHO_CODE = """
class Model:
    def load(self, path):
        pass

    def predict(self, inputs):
        return {"y": inputs["x"]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    write_demo_models(root)
    write_python_model(
        root,
        "echo",
        ECHO_CODE,
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, -1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, -1]}],
        },
    )
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with ServerProcess(root, log, args=["--max-request-bytes", "64MiB"]) as process:
        yield process


@pytest.fixture(scope="module")
def big_body() -> bytes:
    row = [5.123, 3.51, 1.4, 0.25]
    tensor = {"name": "input", "datatype": "FP32", "shape": [ROWS, 4], "data": [row] * ROWS}
    return orjson.dumps({"inputs": [tensor]})


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class Prober:
    """Another client's small requests, one after another, timing each."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        row = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
                           "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip
        with httpx.Client(base_url=self._url, timeout=60) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                assert http.post("/v2/models/iris-onnx/infer", json=row).status_code == 200
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.01)

    def __enter__(self) -> Prober:
        self._thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def test_big_json_body_stalls_nobody_and_costs_no_multiple(
    server: ServerProcess, big_body: bytes
) -> None:
    url = f"{server.url}/v2/models/iris-onnx/infer"
    peak_before = peak_rss(server.pid)
    with Prober(server.url) as prober:
        response = httpx.post(url, content=big_body, timeout=120)
        # Refused from the declared shape, before any array is built from the data.
        assert response.status_code == 400, response.text
        assert "max_batch_size 64" in response.json()["error"]
    grown = peak_rss(server.pid) - peak_before
    # Decoded on the event loop, the body stalled everyone ~2.6 s here.
    assert len(prober.latencies) > 5
    assert max(prober.latencies) < 1.0, sorted(prober.latencies)[-5:]
    # The body itself and little more (decoding it in the server took ~17 times its size).
    assert grown < 3 * len(big_body), f"peak memory grew {grown >> 20} MiB"


def test_big_json_body_is_decoded_right(server: ServerProcess) -> None:
    """The worker process decodes what the event loop would have: the same tensor, the same
    400 naming a bad value."""
    rows = 20_000
    data = [[float(i), i + 0.5, -1.0, 2.25] for i in range(rows)]
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": data}]}
    content = orjson.dumps({**body, "parameters": {"binary_data_output": True}})
    assert len(content) > 256 << 10  # past the inline limit: decoded in the worker
    url = f"{server.url}/v2/models/echo/infer"
    response = httpx.post(url, content=content, timeout=60)
    assert response.status_code == 200, response.text
    header = int(response.headers["inference-header-content-length"])
    echoed = np.frombuffer(response.content[header:], dtype="<f4").reshape(rows, 4)
    assert np.array_equal(echoed, np.array(data, dtype=np.float32))

    data[rows // 2][1] = 1e300
    response = httpx.post(url, content=orjson.dumps(body), timeout=60)
    assert response.status_code == 400
    assert response.json() == {
        "error": "input 'x': a value is out of range for FP32",
        "code": "invalid_tensor",
    }
