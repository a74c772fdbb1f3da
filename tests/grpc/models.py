"""Models the gRPC tests need besides the standard ones: a slow one that logs each call it runs,
and a batched one that logs which requests shared each model call."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.models import write_python_model

# Sleeps `delay` seconds per call and appends each call's input values to calls.log.
SLOW_CODE = """
import json, os, time

class Model:
    def load(self, path):
        self.log = os.path.join(path, "calls.log")
        self.delay = json.load(open(os.path.join(path, "config.json")))["delay"]

    def predict(self, inputs):
        x = inputs["x"]
        with open(self.log, "a") as log:
            log.write(" ".join(str(v) for v in x.reshape(-1).tolist()) + "\\n")
        time.sleep(self.delay)
        return {"y": x * 2}
"""

# y = tanh(x @ W) with a fixed W (each row on its own, so batching cannot change a result);
# appends the tags (column 0) of the rows of each call to calls.log.
RECORDER_CODE = """
import os
import numpy as np

class Model:
    def load(self, path):
        self.log = os.path.join(path, "calls.log")
        self.weights = np.linspace(-1.0, 1.0, 12, dtype=np.float64).reshape(4, 3)

    def predict(self, inputs):
        x = inputs["x"]
        with open(self.log, "a") as log:
            log.write(" ".join(str(int(tag)) for tag in x[:, 0]) + "\\n")
        return {"y": np.tanh(x @ self.weights)}
"""


def write_slow_model(root: Path, name: str, delay: float, max_queue_size: int) -> Path:
    manifest = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        "max_queue_size": max_queue_size,
    }
    version_dir = write_python_model(root, name, SLOW_CODE, manifest)
    (version_dir / "config.json").write_text(json.dumps({"delay": delay}))
    return version_dir


def write_recorder_model(root: Path, name: str = "recorder") -> Path:
    manifest = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1, 3]}],
        "max_batch_size": 64,
        # Long enough for requests sent together over both protocols to meet in one batch.
        "batching": {"max_delay_ms": 1000},
    }
    return write_python_model(root, name, RECORDER_CODE, manifest)


def calls(version_dir: Path) -> list[list[str]]:
    """The values each model call logged, one list per call."""
    log = version_dir / "calls.log"
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []
