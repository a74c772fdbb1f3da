"""PyTorch models on the CPU (extra: ``modelhost[torch]``).

A version folder holds one of:

- ``model.safetensors`` and a Python file defining the ``torch.nn.Module``, named by
  ``entry_point: module:Class`` in model.yaml. The class is built with
  ``**parameters.init`` (a mapping, default empty) and the weights are assigned to it straight
  from the memory-mapped file: no copy of them is made.
- ``model.pt2``: a ``torch.export`` program (``torch.export.save``).
- ``model.pt``: a TorchScript module (``torch.jit.save``). TorchScript is deprecated in
  PyTorch 2.x; ``model.pt2`` is the format to prefer for new models.

``predict`` passes the inputs, in the manifest's order, as positional tensors to ``forward``.
``forward`` returns a tensor (the one output), a tuple or list (the outputs by position) or a
dict (the outputs by name).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from modelhost.errors import ModelLoadFailed
from modelhost.manifest import Manifest
from modelhost.runtimes.base import Runtime, Tensors
from modelhost.runtimes.entry_points import import_entry_point

WEIGHTS_FILE = "model.safetensors"
EXPORT_FILE = "model.pt2"
TORCHSCRIPT_FILE = "model.pt"

# torch.export.load and torch.jit.load have no annotations; typed here for strict mypy.
_load_exported: Callable[[str], Any] = torch.export.load
_load_script: Callable[..., Any] = torch.jit.load
_interop_lock = threading.Lock()
_interop_done = False


def set_torch_threads(threads: int) -> None:
    """Give torch ``threads`` intra-op threads and (once per process) one inter-op thread.

    Both are process-wide settings: the last model loaded decides for every torch model in the
    process. That is acceptable: the loader gives every thread-safe model the same count (the
    cores divided by the calls it may run at once, so usually 1), and parallelism comes from
    concurrent calls. (With OpenMP a worker thread keeps the count it had at its first torch
    op.)
    """
    global _interop_done
    torch.set_num_threads(threads)
    with _interop_lock:
        if _interop_done:
            return
        _interop_done = True
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # parallel work already started, or someone else set it first
            pass


def module_bytes(module: torch.nn.Module | torch.jit.ScriptModule) -> int:
    """Bytes of the module's parameters and buffers, each tensor counted once.

    Memory-mapped weights (safetensors) are file-backed pages, counted anyway: they become
    resident as soon as a forward pass touches them.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    tensors: Iterable[torch.Tensor] = itertools.chain(module.parameters(), module.buffers())
    for tensor in tensors:
        if tensor.is_meta:
            continue
        key = (tensor.data_ptr(), tensor.nbytes)
        if key not in seen:
            seen.add(key)
            total += tensor.nbytes
    return total


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """``array`` as a CPU tensor, sharing its memory when torch can use it as it is.

    Tensors are always writable, and a model may write into its inputs in place, so read-only
    arrays (the binary protocol's buffers) are copied; so are ones torch can't view (negative
    strides, non-native byte order).
    """
    if array.dtype == np.object_:
        raise TypeError("the torch runtime takes numeric tensors, not BYTES")
    viewable = (
        array.flags.writeable
        and array.dtype.isnative
        and all(stride >= 0 for stride in array.strides)
    )
    if not viewable:
        array = np.array(array, dtype=array.dtype.newbyteorder("="), order="C", copy=True)
    return torch.from_numpy(array)


def as_array(value: Any) -> np.ndarray:
    """A model output as a numpy array (sharing the tensor's memory where it can)."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.float()
        if tensor.is_conj() or tensor.is_neg():
            tensor = tensor.resolve_conj().resolve_neg()
        return tensor.numpy()
    return np.asarray(value)


def map_outputs(result: Any, output_names: list[str]) -> Tensors:
    """What ``forward`` returned, by the manifest's output names."""
    if isinstance(result, torch.Tensor):
        if len(output_names) != 1:
            raise ValueError(
                f"forward returned one tensor; the model declares {len(output_names)} outputs "
                f"{output_names} (return a tuple or a dict)"
            )
        return {output_names[0]: as_array(result)}
    if isinstance(result, tuple | list):
        if len(result) != len(output_names):
            raise ValueError(
                f"forward returned {len(result)} values; the model declares "
                f"{len(output_names)} outputs {output_names}"
            )
        return {name: as_array(value) for name, value in zip(output_names, result, strict=True)}
    if isinstance(result, Mapping):
        missing = [name for name in output_names if name not in result]
        if missing:
            raise ValueError(
                f"forward returned a dict without {missing} (it has {sorted(map(str, result))})"
            )
        return {name: as_array(result[name]) for name in output_names}
    raise TypeError(
        f"forward returned {type(result).__name__}; expected a tensor, a tuple/list or a dict"
    )


class TorchRuntime(Runtime):
    """Runs a torch module's ``forward`` under ``torch.inference_mode``."""

    # forward under inference_mode on a module in eval mode reads its weights and writes
    # nothing shared: several threads may call it at once.
    thread_safe = True

    def __init__(self, threads: int = 1, work_dir: Path | None = None) -> None:
        super().__init__(threads, work_dir)
        self._module: Callable[..., Any] | None = None
        self._bytes = 0
        self._input_names: list[str] = []
        self._output_names: list[str] = []

    def load(self, path: Path, manifest: Manifest) -> None:
        bytes_inputs = [spec.name for spec in manifest.inputs if spec.datatype == "BYTES"]
        if bytes_inputs:
            raise ModelLoadFailed(f"the torch runtime takes no BYTES inputs ({bytes_inputs})")
        set_torch_threads(self.threads)
        module: torch.nn.Module | torch.jit.ScriptModule
        if manifest.entry_point:
            module = _load_module_class(path, manifest).eval()
        elif (path / EXPORT_FILE).is_file():
            # An exported program is traced in the mode it was exported in; its module
            # refuses eval().
            module = _load_exported(str(path / EXPORT_FILE)).module()
        elif (path / TORCHSCRIPT_FILE).is_file():
            module = _load_script(str(path / TORCHSCRIPT_FILE), map_location="cpu").eval()
        else:
            raise ModelLoadFailed(
                f"{path} holds no torch model: expected {WEIGHTS_FILE} with an entry_point "
                f"(module:Class) in model.yaml, {EXPORT_FILE} (torch.export) or "
                f"{TORCHSCRIPT_FILE} (TorchScript)"
            )
        self._bytes = module_bytes(module)
        self._module = module
        self._input_names = [spec.name for spec in manifest.inputs]
        self._output_names = [spec.name for spec in manifest.outputs]

    def predict(self, inputs: Tensors) -> Tensors:
        module = self._module
        assert module is not None, "predict before load"
        tensors = [as_tensor(inputs[name]) for name in self._input_names]
        with torch.inference_mode():
            result = module(*tensors)
        return map_outputs(result, self._output_names)

    def unload(self) -> None:
        self._module = None
        self._bytes = 0

    def reported_bytes(self) -> int | None:
        return self._bytes


def _load_module_class(path: Path, manifest: Manifest) -> torch.nn.Module:
    assert manifest.entry_point is not None
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadFailed(f"{path} has no {WEIGHTS_FILE} for {manifest.entry_point}")
    init = manifest.parameters.get("init", {})
    if not isinstance(init, dict):
        raise ModelLoadFailed(f"parameters.init must be a mapping, not {type(init).__name__}")
    cls = import_entry_point(path, manifest.entry_point)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelLoadFailed(f"entry_point {manifest.entry_point} is not a torch.nn.Module class")
    # safetensors maps the file: the tensors are views of its pages, and assign=True makes
    # them the module's parameters without copying them.
    state = safetensors.torch.load_file(str(weights), device="cpu")
    # First on the meta device: no memory and no random initialisation for weights the file
    # replaces anyway (for a 1 GiB model that initialisation costs more than reading it).
    with torch.device("meta"):
        module: torch.nn.Module = cls(**init)
    _assign(module, state, cls.__name__)
    if any(t.is_meta for t in itertools.chain(module.parameters(), module.buffers())):
        # Tensors the file does not hold (non-persistent buffers) must come from the
        # constructor itself: build it for real on the CPU.
        module = cls(**init)
        _assign(module, state, cls.__name__)
    module.requires_grad_(False)
    return module


def _assign(module: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelLoadFailed(f"{WEIGHTS_FILE} does not fit {name}: {exc}") from None
