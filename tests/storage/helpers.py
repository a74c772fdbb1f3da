"""The ``modelhost models`` command as an operator runs it, and model folders for the tests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.storage.s3server import MotoServer
from tests.support.models import write_python_model


def modelhost(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``modelhost ARGS``; the result is returned whatever the exit status."""
    return subprocess.run(
        [sys.executable, "-m", "modelhost.cli.main", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def push(
    source: Path, name: str, repository: str, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    result = modelhost(
        "models",
        "push",
        str(source),
        "--name",
        name,
        "--model-repository",
        repository,
        *extra,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bucket_index(moto: MotoServer, bucket: str, key_prefix: str) -> dict[str, Any]:
    """The file index of a pushed version, read straight from the S3 server."""
    index: dict[str, Any] = json.loads(moto.get(bucket, f"{key_prefix}/.modelhost/files.json"))
    return index


# Reads its weights file and answers with their byte sum: a wrong or partial copy shows.
WEIGHTS_CODE = """
import os
import numpy as np

class Model:
    def load(self, path):
        weights = np.fromfile(os.path.join(path, "weights.bin"), dtype=np.uint8)
        self.total = float(weights.sum(dtype=np.uint64))

    def predict(self, inputs):
        return {"y": inputs["x"] * 0 + self.total}
"""


def write_weights_model(root: Path, name: str, size: int) -> Path:
    """A python-runtime model whose weights are ``size`` random bytes; returns its folder."""
    version_dir = write_python_model(
        root,
        name,
        WEIGHTS_CODE,
        {
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
        },
    )
    (version_dir / "weights.bin").write_bytes(os.urandom(size))
    return version_dir


def weights_total(version_dir: Path) -> float:
    return float(sum((version_dir / "weights.bin").read_bytes()))


def infer_body(values: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP64", "shape": [len(values)], "data": values}]}
