"""The KServe SDK's REST client works against modelhost unchanged.

The SDK pins versions that clash with this project's (psutil, protobuf), so it lives in a
virtualenv of its own, made once (about a minute) and reused: .venv-kserve at the repo root.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from tests.support.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
KSERVE_VENV = ROOT / ".venv-kserve"
KSERVE = "kserve==0.21.0"


def kserve_python() -> Path:
    python = KSERVE_VENV / "bin" / "python"
    marker = KSERVE_VENV / f".installed-{KSERVE}"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(KSERVE_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", KSERVE], check=True, timeout=900
        )
        marker.write_text("")
    return python


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
