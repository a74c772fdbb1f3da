"""The torch runtime: TorchScript, torch.export and safetensors + module class, in process and
through a real server; and the install hint when torch is missing."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import safetensors.torch as safetensors_torch
import torch

from modelhost.errors import ModelLoadFailed
from modelhost.manifest import Manifest, parse_manifest
from modelhost.runtimes.factory import runtime_class
from modelhost.runtimes.torch import TorchRuntime, as_tensor
from tests.cache.helpers import cache_state
from tests.support.models import write_version
from tests.support.server import ServerProcess

# TorchScript is deprecated in torch 2.x: scripting, saving and loading all say so.
jit_deprecated = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

LINEAR_MANIFEST: dict[str, Any] = {
    "runtime": "torch",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}],
    "max_batch_size": 16,
}

# Two inputs, two outputs; a buffer that is not in the state dict (built by the constructor);
# returns a dict or a tuple depending on its init arguments.
MLP_SOURCE = """
import torch
from torch import nn


class TwoHeads(nn.Module):
    def __init__(self, features, hidden, classes, as_dict=True):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, classes)
        self.register_buffer("offset", torch.full((features,), 0.5), persistent=False)
        self.as_dict = as_dict

    def forward(self, x, scale):
        logits = self.head(self.body(x - self.offset)) * scale
        probabilities = torch.softmax(logits, dim=-1)
        if self.as_dict:
            return {"probabilities": probabilities, "logits": logits}
        return logits, probabilities
"""

MLP_INIT = {"features": 4, "hidden": 8, "classes": 3}


def mlp_manifest(**parameters: Any) -> dict[str, Any]:
    return {
        "runtime": "torch",
        "entry_point": "heads:TwoHeads",
        "parameters": {"init": {**MLP_INIT, **parameters}},
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
            {"name": "scale", "datatype": "FP32", "shape": [-1, 1]},
        ],
        "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ],
        "max_batch_size": 16,
    }


def reference_linear() -> Any:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3).eval()


def write_torchscript_model(root: Path, name: str = "linear-ts") -> Path:
    version_dir = write_version(root, name, 1, LINEAR_MANIFEST)
    torch.jit.save(torch.jit.script(reference_linear()), str(version_dir / "model.pt"))
    return version_dir


def write_export_model(root: Path, name: str = "linear-export") -> Path:
    version_dir = write_version(root, name, 1, LINEAR_MANIFEST)
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        reference_linear(), (torch.ones(2, 4),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, str(version_dir / "model.pt2"))
    return version_dir


def reference_mlp() -> Any:
    """The module the safetensors model's weights come from (built from the same source)."""
    namespace: dict[str, Any] = {}
    exec(compile(MLP_SOURCE, "heads.py", "exec"), namespace)
    torch.manual_seed(1)
    return namespace["TwoHeads"](**MLP_INIT).eval()


def write_safetensors_model(
    root: Path, name: str = "heads", manifest: dict[str, Any] | None = None
) -> Path:
    version_dir = write_version(root, name, 1, manifest or mlp_manifest())
    (version_dir / "heads.py").write_text(textwrap.dedent(MLP_SOURCE))
    weights = reference_mlp().state_dict()
    safetensors_torch.save_file(weights, str(version_dir / "model.safetensors"))
    return version_dir


def manifest_of(version_dir: Path) -> Manifest:
    import yaml

    return parse_manifest(yaml.safe_load((version_dir / "model.yaml").read_text()), source="test")


def loaded(version_dir: Path, threads: int = 1) -> TorchRuntime:
    runtime = TorchRuntime(threads=threads)
    runtime.load(version_dir, manifest_of(version_dir))
    return runtime


def features(rows: int) -> np.ndarray:
    return np.random.default_rng(rows).normal(size=(rows, 4)).astype(np.float32)


def linear_expected(x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        result: np.ndarray = reference_linear()(torch.from_numpy(x)).numpy()
    return result


# --- in process -------------------------------------------------------------------------------


def test_factory_knows_the_torch_runtime() -> None:
    assert runtime_class("torch") is TorchRuntime
    assert TorchRuntime.thread_safe


@jit_deprecated
def test_torchscript_model(tmp_path: Path) -> None:
    runtime = loaded(write_torchscript_model(tmp_path))
    x = features(5)
    outputs = runtime.predict({"x": x})
    assert list(outputs) == ["y"]
    assert outputs["y"].dtype == np.float32
    np.testing.assert_allclose(outputs["y"], linear_expected(x), rtol=1e-6, atol=1e-6)
    assert runtime.reported_bytes() == (4 * 3 + 3) * 4  # weight and bias, FP32
    runtime.unload()
    assert runtime.reported_bytes() == 0


def test_exported_program_model(tmp_path: Path) -> None:
    runtime = loaded(write_export_model(tmp_path))
    for rows in (1, 7):  # the batch dimension was exported as dynamic
        x = features(rows)
        np.testing.assert_allclose(
            runtime.predict({"x": x})["y"], linear_expected(x), rtol=1e-6, atol=1e-6
        )
    assert runtime.reported_bytes() == (4 * 3 + 3) * 4


def test_safetensors_module_class_by_name(tmp_path: Path) -> None:
    runtime = loaded(write_safetensors_model(tmp_path))
    x = features(6)
    scale = np.full((6, 1), 2.0, dtype=np.float32)
    outputs = runtime.predict({"x": x, "scale": scale})
    with torch.inference_mode():
        expected = reference_mlp()(torch.from_numpy(x), torch.from_numpy(scale))
    assert list(outputs) == ["logits", "probabilities"]
    np.testing.assert_allclose(outputs["logits"], expected["logits"].numpy(), atol=1e-6)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), np.ones(6), atol=1e-6)
    # Parameters (4*8+8 + 8*3+3) and the constructor's buffer (4), all FP32.
    assert runtime.reported_bytes() == (4 * 8 + 8 + 8 * 3 + 3 + 4) * 4


def test_safetensors_tuple_outputs_map_by_position(tmp_path: Path) -> None:
    runtime = loaded(write_safetensors_model(tmp_path, manifest=mlp_manifest(as_dict=False)))
    x = features(2)
    outputs = runtime.predict({"x": x, "scale": np.ones((2, 1), dtype=np.float32)})
    np.testing.assert_allclose(
        outputs["probabilities"], torch.softmax(torch.from_numpy(outputs["logits"]), -1).numpy()
    )


def test_safetensors_weights_stay_memory_mapped(tmp_path: Path) -> None:
    version_dir = write_safetensors_model(tmp_path)
    runtime = loaded(version_dir)
    module = runtime._module
    assert isinstance(module, torch.nn.Module)
    weights_file = str((version_dir / "model.safetensors").resolve())
    mappings = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] == weights_file:
            start, end = (int(part, 16) for part in fields[0].split("-"))
            mappings.append((start, end))
    assert mappings, "the weights file is not mapped"
    for name, parameter in module.named_parameters():
        assert any(start <= parameter.data_ptr() < end for start, end in mappings), name
        assert not parameter.requires_grad


def test_writable_inputs_are_shared_and_read_only_ones_copied() -> None:
    writable = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert as_tensor(writable).data_ptr() == writable.ctypes.data
    # What the binary protocol hands over: a view of the request's bytes. No warning (the tests
    # turn warnings into errors), and the tensor owns a copy.
    read_only = np.frombuffer(writable.tobytes(), dtype=np.float32).reshape(2, 3)
    tensor = as_tensor(read_only)
    assert tensor.data_ptr() != read_only.ctypes.data
    assert tensor.tolist() == writable.tolist()
    big_endian = writable.astype(">f4")
    assert as_tensor(big_endian).tolist() == writable.tolist()
    assert as_tensor(writable[::-1]).tolist() == writable[::-1].tolist()


@jit_deprecated
def test_read_only_inputs_predict(tmp_path: Path) -> None:
    runtime = loaded(write_torchscript_model(tmp_path))
    x = features(3)
    read_only = np.frombuffer(x.tobytes(), dtype=np.float32).reshape(3, 4)
    outputs = runtime.predict({"x": read_only})
    np.testing.assert_allclose(outputs["y"], linear_expected(x), atol=1e-6)


def test_missing_model_file(tmp_path: Path) -> None:
    version_dir = write_version(tmp_path, "empty", 1, LINEAR_MANIFEST)
    with pytest.raises(ModelLoadFailed, match="model.pt2.*model.pt"):
        loaded(version_dir)


def test_weights_that_do_not_fit_the_class(tmp_path: Path) -> None:
    manifest = mlp_manifest(hidden=16)  # the file's weights are for hidden=8
    with pytest.raises(ModelLoadFailed, match="does not fit TwoHeads"):
        loaded(write_safetensors_model(tmp_path, manifest=manifest))


def test_bad_entry_points(tmp_path: Path) -> None:
    version_dir = write_safetensors_model(tmp_path)
    for entry_point, message in [
        ("heads:Missing", "defines no class 'Missing'"),
        ("nowhere:TwoHeads", "nowhere.py is not in"),
        ("../heads:TwoHeads", "is not 'module:Class'"),
        ("torch:nn", "torch.py is not in"),
    ]:
        manifest = mlp_manifest()
        manifest["entry_point"] = entry_point
        with pytest.raises(ModelLoadFailed, match=message):
            TorchRuntime().load(version_dir, parse_manifest(manifest, source="test"))
    (version_dir / "plain.py").write_text("class NotAModule:\n    pass\n")
    manifest = {**mlp_manifest(), "entry_point": "plain:NotAModule"}
    with pytest.raises(ModelLoadFailed, match="not a torch.nn.Module"):
        TorchRuntime().load(version_dir, parse_manifest(manifest, source="test"))


@jit_deprecated
def test_outputs_that_do_not_match_the_manifest(tmp_path: Path) -> None:
    version_dir = write_torchscript_model(tmp_path)
    manifest = {
        **LINEAR_MANIFEST,
        "outputs": [
            {"name": "a", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "b", "datatype": "FP32", "shape": [-1, 3]},
        ],
    }
    runtime = TorchRuntime()
    runtime.load(version_dir, parse_manifest(manifest, source="test"))
    with pytest.raises(ValueError, match="one tensor; the model declares 2 outputs"):
        runtime.predict({"x": features(1)})


def test_bytes_inputs_are_refused(tmp_path: Path) -> None:
    version_dir = write_export_model(tmp_path)
    manifest = {**LINEAR_MANIFEST, "inputs": [{"name": "x", "datatype": "BYTES", "shape": [-1]}]}
    with pytest.raises(ModelLoadFailed, match="no BYTES inputs"):
        TorchRuntime().load(version_dir, parse_manifest(manifest, source="test"))


def test_concurrent_predicts_on_one_instance(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    runtime = loaded(write_safetensors_model(tmp_path))
    batches = [features(rows) for rows in range(1, 17)]
    requests = [{"x": x, "scale": np.ones((len(x), 1), dtype=np.float32)} for x in batches]
    serial = [runtime.predict(inputs)["logits"] for inputs in requests]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(runtime.predict, requests))
    for one, other in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(one, other["logits"])


# --- through a server -------------------------------------------------------------------------


def infer(client: httpx.Client, model: str, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    body = {
        "inputs": [
            {
                "name": name,
                "datatype": "FP32",
                "shape": list(array.shape),
                "data": array.ravel().tolist(),
            }
            for name, array in inputs.items()
        ]
    }
    response = client.post(f"/v2/models/{model}/infer", json=body)
    assert response.status_code == 200, response.text
    return {
        output["name"]: np.array(output["data"], dtype=np.float32).reshape(output["shape"])
        for output in response.json()["outputs"]
    }


@jit_deprecated
def test_torch_models_served_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_torchscript_model(root, "linear-ts")
    write_export_model(root, "linear-export")
    write_safetensors_model(root, "heads")
    x = features(4)
    scale = np.full((4, 1), 3.0, dtype=np.float32)
    with ServerProcess(root, tmp_path / "server.log") as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for model in ("linear-ts", "linear-export"):
                outputs = infer(client, model, {"x": x})
                np.testing.assert_allclose(outputs["y"], linear_expected(x), atol=1e-5)
            outputs = infer(client, "heads", {"x": x, "scale": scale})
            with torch.inference_mode():
                expected = reference_mlp()(torch.from_numpy(x), torch.from_numpy(scale))
            np.testing.assert_allclose(outputs["logits"], expected["logits"].numpy(), atol=1e-5)
            np.testing.assert_allclose(
                outputs["probabilities"], expected["probabilities"].numpy(), atol=1e-5
            )
            # The cache charges what the runtime counted: the tensors' bytes.
            footprints = {m["name"]: m["footprint_bytes"] for m in cache_state(client)["models"]}
            assert footprints["linear-ts"] == (4 * 3 + 3) * 4
            assert footprints["heads"] == (4 * 8 + 8 + 8 * 3 + 3 + 4) * 4


@jit_deprecated
def test_missing_torch_fails_only_its_models(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_torchscript_model(root, "linear-ts")
    write_version(
        root,
        "echo",
        1,
        {
            "runtime": "python",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        },
    )
    (root / "echo" / "1" / "model.py").write_text(
        "class Model:\n"
        "    def load(self, path):\n"
        "        pass\n\n"
        "    def predict(self, inputs):\n"
        "        return {'y': inputs['x']}\n"
    )
    # A folder on PYTHONPATH whose torch cannot be imported: the server runs as it would where
    # the [torch] extra was never installed.
    shadow = tmp_path / "no-torch" / "torch"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    )
    with ServerProcess(root, tmp_path / "server.log", python_path=[shadow.parent]) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]}
            response = client.post("/v2/models/linear-ts/infer", json=body)
            assert response.status_code == 503
            assert response.json()["code"] == "runtime_not_installed"
            assert "pip install 'modelhost[torch]'" in response.json()["error"]
            body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}]}
            response = client.post("/v2/models/echo/infer", json=body)
            assert response.status_code == 200, response.text
            index = {e["name"]: e for e in client.post("/v2/repository/index").json()}
            assert index["linear-ts"]["state"] == "UNAVAILABLE"
            assert "modelhost[torch]" in index["linear-ts"]["reason"]


PLAIN_SOURCE = """
import torch
from torch import nn


class Plain(nn.Module):
    devices = []

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        Plain.devices.append(self.linear.weight.device.type)

    def forward(self, x):
        return self.linear(x)
"""


def test_module_is_built_without_initialising_weights_the_file_replaces(tmp_path: Path) -> None:
    manifest = {**LINEAR_MANIFEST, "entry_point": "plain:Plain"}
    version_dir = write_version(tmp_path, "plain", 1, manifest)
    (version_dir / "plain.py").write_text(textwrap.dedent(PLAIN_SOURCE))
    reference = reference_linear()
    state = {f"linear.{key}": value for key, value in reference.state_dict().items()}
    safetensors_torch.save_file(state, str(version_dir / "model.safetensors"))
    runtime = loaded(version_dir)
    x = features(5)
    np.testing.assert_allclose(runtime.predict({"x": x})["y"], linear_expected(x), atol=1e-6)
    model_class = type(runtime._module)  # type: ignore[attr-defined]
    assert model_class.devices == ["meta"]  # built once, on the meta device: no random init
