"""The KServe SDK's REST client works against modelhost unchanged (the SDK in a virtualenv of its
own: :mod:`tests.e2e.kserve_venv`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from tests.e2e.kserve_venv import ROOT, kserve_python
from tests.support import early
from tests.support.server import ServerProcess

TEST = "tests/e2e/test_kserve_client.py::test_kserve_rest_client"


def make_kserve_venv() -> early.SetUp:
    log = early.scratch() / "kserve-venv.log"
    return early.SetUp([sys.executable, "-m", "tests.e2e.kserve_venv"], cwd=ROOT, log=log)


EARLY = {TEST: make_kserve_venv}


def test_kserve_rest_client(server: ServerProcess) -> None:
    script = Path(__file__).with_name("kserve_client_script.py")
    result = subprocess.run(
        [str(kserve_python()), str(script), server.url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["live"] is True and seen["ready"] is True and seen["model_ready"] is True
    body = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [2, 4],
                "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
            }
        ]
    }
    expected = httpx.post(f"{server.url}/v2/models/iris-onnx/infer", json=body).json()
    for binary in (False, True):
        got = seen[f"binary={binary}"]
        assert got["id"] == f"k-{binary}" and got["name"] == "probabilities"
        assert got["datatype"] == "FP32" and got["shape"] == [2, 3]
        np.testing.assert_allclose(
            np.array(got["data"]).ravel(), expected["outputs"][0]["data"], rtol=1e-6
        )
