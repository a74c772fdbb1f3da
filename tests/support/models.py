"""Real model files for the tests, written into a repository folder."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import yaml

from modelhost.demo_models import build_demo_models
from modelhost.tensors.datatypes import DATATYPES

ALL_DATATYPES = sorted(DATATYPES)

IDENTITY_CODE = """
class Model:
    def load(self, path):
        self.path = path

    def predict(self, inputs):
        return {"OUT_" + name[3:]: value.copy() for name, value in inputs.items()}
"""

# A model that holds `megabytes` of real (touched) memory, checks it is intact on every call,
# and appends a line to loads.log in its folder each time it loads.
MEMORY_CODE = """
import json, os, time
import numpy as np

class Model:
    def load(self, path):
        config = json.load(open(os.path.join(path, "config.json")))
        self.delay = config.get("delay", 0.0)
        time.sleep(config.get("load_delay", 0.0))
        self.block = np.ones(config["megabytes"] * (1 << 20) // 8, dtype=np.float64)
        self.expected = float(self.block.size)
        with open(os.path.join(path, "loads.log"), "a") as log:
            log.write(f"{os.getpid()} {time.time()}\\n")

    def predict(self, inputs):
        time.sleep(self.delay)
        if self.block is None or float(self.block.sum()) != self.expected:
            raise RuntimeError("model memory was released or corrupted under a request")
        x = inputs["x"]
        return {"y": x * 2}

    def unload(self):
        self.block = None
"""

FAILING_CODE = """
class Model:
    def load(self, path):
        raise RuntimeError("weights file is corrupt (on purpose)")

    def predict(self, inputs):
        return inputs
"""


def write_version(root: Path, name: str, version: int, manifest: dict[str, Any]) -> Path:
    version_dir = root / name / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    (version_dir / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return version_dir


def write_python_model(
    root: Path, name: str, code: str, manifest: dict[str, Any], version: int = 1
) -> Path:
    version_dir = write_version(root, name, version, {"runtime": "python", **manifest})
    (version_dir / "model.py").write_text(textwrap.dedent(code))
    return version_dir


def write_identity_model(
    root: Path, name: str = "identity", without: frozenset[str] | set[str] = frozenset()
) -> Path:
    """One input and one output per V2 datatype (but those ``without``): IN_<T> comes back as
    OUT_<T>."""
    tensors = lambda prefix: [  # noqa: E731
        {"name": f"{prefix}_{dt}", "datatype": dt, "shape": [-1, -1]}
        for dt in ALL_DATATYPES
        if dt not in without
    ]
    return write_python_model(
        root, name, IDENTITY_CODE, {"inputs": tensors("IN"), "outputs": tensors("OUT")}
    )


def write_memory_model(
    root: Path,
    name: str,
    megabytes: int,
    *,
    delay: float = 0.0,
    load_delay: float = 0.0,
    hint: bool = True,
    version: int = 1,
) -> Path:
    manifest: dict[str, Any] = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
    }
    if hint:
        manifest["memory_bytes"] = megabytes << 20
    version_dir = write_python_model(root, name, MEMORY_CODE, manifest, version)
    (version_dir / "config.json").write_text(
        json.dumps({"megabytes": megabytes, "delay": delay, "load_delay": load_delay})
    )
    return version_dir


def load_count(version_dir: Path) -> int:
    log = version_dir / "loads.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def write_failing_model(root: Path, name: str = "broken") -> Path:
    return write_python_model(
        root,
        name,
        FAILING_CODE,
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        },
    )


def write_demo_models(root: Path) -> list[str]:
    return build_demo_models(root, minilm=False)  # MiniLM has tests of its own


# Records how many predict calls overlap on one instance and across all instances of the model.
CONCURRENCY_CODE = """
import sys, threading, time
import numpy as np

class Model:
    def load(self, path):
        self.inside = 0
        # Each instance imports this file as its own module; the count spans all of them.
        self.shared = sys.__dict__.setdefault(
            "_modelhost_test_" + path, {"lock": threading.Lock(), "running": 0, "peak": 0}
        )

    def predict(self, inputs):
        shared = self.shared
        self.inside += 1
        if self.inside > 1:
            raise RuntimeError("two threads inside one instance at once")
        with shared["lock"]:
            shared["running"] += 1
            shared["peak"] = max(shared["peak"], shared["running"])
        time.sleep(0.05)
        with shared["lock"]:
            shared["running"] -= 1
            peak = shared["peak"]
        self.inside -= 1
        return {"peak": np.array([peak], dtype=np.int32)}
"""


def write_concurrency_model(root: Path, name: str, instances: int) -> Path:
    return write_python_model(
        root,
        name,
        CONCURRENCY_CODE,
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "peak", "datatype": "INT32", "shape": [1]}],
            "instances": instances,
        },
    )


# Fails to load while its folder holds a file named "fail"; logs every attempt.
FLAKY_CODE = """
import os, time

class Model:
    def load(self, path):
        with open(os.path.join(path, "attempts.log"), "a") as log:
            log.write(f"{time.time()}\\n")
        if os.path.exists(os.path.join(path, "fail")):
            raise RuntimeError("storage hiccup (on purpose)")

    def predict(self, inputs):
        return {"y": inputs["x"]}
"""


def write_flaky_model(root: Path, name: str = "flaky") -> Path:
    version_dir = write_python_model(
        root,
        name,
        FLAKY_CODE,
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        },
    )
    (version_dir / "fail").write_text("")
    return version_dir


def attempt_count(version_dir: Path) -> int:
    log = version_dir / "attempts.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


# Sleeps `delay` seconds per call and logs every call with its batch size.
SLOW_CODE = """
import json, os, time

class Model:
    def load(self, path):
        self.path = path
        self.delay = json.load(open(os.path.join(path, "config.json")))["delay"]

    def predict(self, inputs):
        x = inputs["x"]
        with open(os.path.join(self.path, "calls.log"), "a") as log:
            log.write(f"{x.shape[0]}\\n")
        time.sleep(self.delay)
        return {"y": x + 1}
"""


def write_slow_model(
    root: Path, name: str, delay: float, *, max_queue_size: int = 256, batching: bool = False
) -> Path:
    manifest: dict[str, Any] = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, -1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, -1]}],
        "max_batch_size": 16,
        "max_queue_size": max_queue_size,
    }
    if batching:
        manifest["batching"] = {"max_delay_ms": 5}
    version_dir = write_python_model(root, name, SLOW_CODE, manifest)
    (version_dir / "config.json").write_text(json.dumps({"delay": delay}))
    return version_dir


def call_sizes(version_dir: Path) -> list[int]:
    log = version_dir / "calls.log"
    return [int(line) for line in log.read_text().split()] if log.exists() else []


# A deterministic "embedding" of texts: the first 8 bytes' values, normalized; and token counts.
HASH_EMBEDDING_CODE = """
import numpy as np

class Model:
    def load(self, path):
        pass

    def predict(self, inputs):
        texts = inputs["text"]
        vectors = np.zeros((len(texts), 8), dtype=np.float32)
        for row, text in enumerate(texts):
            data = (bytes(text) + b"\\x01" * 8)[:8]
            vectors[row] = np.frombuffer(data, dtype=np.uint8)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        counts = np.array([len(bytes(t).split()) for t in texts], dtype=np.int64)
        return {"embedding": vectors, "token_count": counts}
"""


def write_hash_embedding_model(
    root: Path, name: str = "hash-embed", max_batch_size: int = 4
) -> Path:
    return write_python_model(
        root,
        name,
        HASH_EMBEDDING_CODE,
        {
            "task": "embedding",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "embedding", "datatype": "FP32", "shape": [-1, 8]},
                {"name": "token_count", "datatype": "INT64", "shape": [-1]},
            ],
            "max_batch_size": max_batch_size,
            "batching": {"max_delay_ms": 2},
        },
    )
